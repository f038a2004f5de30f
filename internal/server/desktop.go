package server

import (
	"context"
	"errors"
	"os"

	"github.com/godbus/dbus/v5"
)

// The freedesktop.org Desktop Notifications interface (version 1.2),
// served on the session bus by every common desktop.
const (
	notifyService = "org.freedesktop.Notifications"
	notifyPath    = "/org/freedesktop/Notifications"
	notifyMethod  = notifyService + ".Notify"
	// desktopTimeout: -1 lets the notification server choose how long a
	// notification shows.
	desktopTimeout = int32(-1)
)

// errNoSessionBus: desktop notifications are on, but this process has no
// session bus (a service without a desktop session).
var errNoSessionBus = errors.New("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)")

// desktopSink shows each notification on the desktop through
// org.freedesktop.Notifications on the session bus. It connects for each
// notification: they are rare, and a desktop session may come and go
// while serve runs.
func desktopSink() func(context.Context, Notification) error {
	return func(ctx context.Context, e Notification) error {
		if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
			return errNoSessionBus
		}
		conn, err := dbus.ConnectSessionBus(dbus.WithContext(ctx))
		if err != nil {
			return err
		}
		defer conn.Close()
		summary := "mailkey: " + e.Account + " " + e.Event
		call := conn.Object(notifyService, notifyPath).CallWithContext(ctx, notifyMethod, 0,
			"mailkey", uint32(0), "", summary, e.Message, []string{}, map[string]dbus.Variant{}, desktopTimeout)
		return call.Err
	}
}
