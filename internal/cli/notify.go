package cli

import (
	"context"
	"log/slog"
	"sync"

	"github.com/mailkey/mailkey/internal/sdnotify"
)

// notifier tells the service manager that started a daemon (systemd with
// Type=notify) when it serves and when it stops, and feeds systemd's
// watchdog in between when the unit sets WatchdogSec=. Without
// $NOTIFY_SOCKET it does nothing. A message that cannot be sent is logged:
// the daemon serves all the same.
type notifier struct {
	log  *slog.Logger
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// ready sends READY=1 with status as the unit's status line
// (systemctl status shows it), and starts the watchdog keep-alives.
func (n *notifier) ready(status string) {
	n.send(sdnotify.Ready + "\nSTATUS=" + status)
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	n.wg.Go(func() {
		sdnotify.KeepAlive(ctx, func(err error) {
			n.log.Warn("could not feed systemd's watchdog", "error", err.Error())
		})
	})
}

// stopping stops the keep-alives and sends STOPPING=1.
func (n *notifier) stopping() {
	if n.stop != nil {
		n.stop()
		n.wg.Wait()
	}
	n.send(sdnotify.Stopping)
}

func (n *notifier) send(state string) {
	if _, err := sdnotify.Notify(state); err != nil {
		n.log.Warn("could not tell systemd", "state", state, "error", err.Error())
	}
}
