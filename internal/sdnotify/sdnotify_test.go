package sdnotify

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
)

// listen opens a unixgram socket as systemd's manager does and returns its
// name and a function that reads the next datagram.
func listen(t *testing.T, name string) func() string {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return func() string {
		t.Helper()
		if err := conn.SetReadDeadline(testwait.Deadline(t)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

func TestNotifyPath(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	next := listen(t, name)
	t.Setenv(EnvSocket, name)
	sent, err := Notify(Ready + "\nSTATUS=serving")
	if err != nil || !sent {
		t.Fatalf("Notify = %v, %v", sent, err)
	}
	if got := next(); got != "READY=1\nSTATUS=serving" {
		t.Errorf("datagram %q", got)
	}
}

// TestNotifyAbstract: systemd's own socket is usually "@/org/freedesktop/systemd1/notify".
func TestNotifyAbstract(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the abstract namespace is Linux's")
	}
	name := "@mailkey-sdnotify-test-" + strconv.Itoa(os.Getpid())
	next := listen(t, name)
	t.Setenv(EnvSocket, name)
	if sent, err := Notify(Stopping); err != nil || !sent {
		t.Fatalf("Notify = %v, %v", sent, err)
	}
	if got := next(); got != Stopping {
		t.Errorf("datagram %q", got)
	}
}

func TestNotifyUnset(t *testing.T) {
	t.Setenv(EnvSocket, "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("Notify without %s = %v, %v", EnvSocket, sent, err)
	}
}

func TestNotifyErrors(t *testing.T) {
	for _, name := range []string{"relative/notify", filepath.Join(t.TempDir(), "nobody-listens")} {
		t.Setenv(EnvSocket, name)
		if sent, err := Notify(Ready); sent || err == nil {
			t.Errorf("Notify to %q = %v, %v; want an error", name, sent, err)
		}
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"garbage", "", 0},
		{"-5", "", 0},
		{"30000000", "", 15 * time.Second},
		{"30000000", pid, 15 * time.Second},
		{"30000000", "1", 0}, // meant for another process
	} {
		t.Setenv(EnvWatchdogUS, tc.usec)
		t.Setenv(EnvWatchdogPID, tc.pid)
		if got := WatchdogInterval(); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}

func TestKeepAlive(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	next := listen(t, name)
	t.Setenv(EnvSocket, name)
	t.Setenv(EnvWatchdogUS, "2000")
	t.Setenv(EnvWatchdogPID, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); KeepAlive(ctx, func(err error) { t.Error(err) }) }()
	for range 2 {
		if got := next(); got != Watchdog {
			t.Errorf("datagram %q, want %q", got, Watchdog)
		}
	}
	cancel()
	<-done

	// Without WatchdogSec= it returns at once.
	t.Setenv(EnvWatchdogUS, "")
	KeepAlive(context.Background(), nil)
}
