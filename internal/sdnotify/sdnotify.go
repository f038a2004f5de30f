// Package sdnotify tells systemd what a service is doing, as sd_notify(3)
// does: READY=1 once it serves, STOPPING=1 when it begins to shut down, and
// WATCHDOG=1 keep-alives when the unit asks for them (WatchdogSec=). It
// writes one datagram per call to the unix socket named by $NOTIFY_SOCKET,
// a path or, with a leading '@', a name in Linux's abstract namespace.
//
// Without $NOTIFY_SOCKET (not started by systemd, or not Type=notify) every
// call does nothing, so a command can notify unconditionally.
package sdnotify

import (
	"context"
	"errors"
	"net"
	"os"
	"strconv"
	"time"
)

// Environment variables systemd sets for a service (sd_notify(3),
// sd_watchdog_enabled(3)).
const (
	EnvSocket      = "NOTIFY_SOCKET"
	EnvWatchdogUS  = "WATCHDOG_USEC"
	EnvWatchdogPID = "WATCHDOG_PID"
)

// States, as sd_notify(3) names them.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// writeTimeout bounds one send: systemd reads its socket at once, and a
// service must not hang on a manager that has stopped reading.
const writeTimeout = 5 * time.Second

// Notify sends state (one or more NAME=VALUE lines) to systemd. It reports
// whether it sent anything: false with a nil error when $NOTIFY_SOCKET is
// unset.
func Notify(state string) (bool, error) {
	name := os.Getenv(EnvSocket)
	if name == "" {
		return false, nil
	}
	// Go's net package maps a leading '@' to the abstract namespace.
	if name[0] != '/' && name[0] != '@' {
		return false, errors.New("sdnotify: " + EnvSocket + " is neither an absolute path nor an abstract name")
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return false, err
	}
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// WatchdogInterval is how often to send WATCHDOG=1: half the unit's
// WatchdogSec=, as sd_watchdog_enabled(3) advises. It is 0 when systemd
// expects no keep-alives from this process.
func WatchdogInterval() time.Duration {
	us, err := strconv.ParseInt(os.Getenv(EnvWatchdogUS), 10, 64)
	if err != nil || us <= 0 {
		return 0
	}
	if pid := os.Getenv(EnvWatchdogPID); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(us) * time.Microsecond / 2
}

// KeepAlive sends WATCHDOG=1 every WatchdogInterval until ctx ends; it
// returns at once when the unit has no watchdog. A failed send is passed to
// failed (may be nil) and the next one is tried all the same.
func KeepAlive(ctx context.Context, failed func(error)) {
	every := WatchdogInterval()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := Notify(Watchdog); err != nil && failed != nil {
				failed(err)
			}
		}
	}
}
