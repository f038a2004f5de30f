package server

import (
	"bufio"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// fakeNotifications is an org.freedesktop.Notifications server.
type fakeNotifications struct{ got chan []string }

func (f *fakeNotifications) Notify(app string, _ uint32, _ string, summary, body string, _ []string, _ map[string]dbus.Variant, _ int32) (uint32, *dbus.Error) {
	f.got <- []string{app, summary, body}
	return 1, nil
}

// TestDesktopNotification: with a session bus, a notification reaches
// org.freedesktop.Notifications on it, through a real dbus-daemon.
func TestDesktopNotification(t *testing.T) {
	daemon, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Skip("dbus-daemon is not installed (Debian: dbus-daemon)")
	}
	cmd := exec.Command(daemon, "--session", "--nofork", "--print-address=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr = strings.TrimSpace(addr)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)

	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fake := &fakeNotifications{got: make(chan []string, 1)}
	if err := conn.Export(fake, notifyPath, notifyService); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(notifyService, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}

	n := Notification{Account: "work", Event: EventNeedsLogin, Message: "work: needs a login (run mailkey login work)", Time: time.Now()}
	if err := desktopSink()(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	got := <-fake.got
	if want := []string{"mailkey", "mailkey: work needs-login", "work: needs a login (run mailkey login work)"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Notify(%q), want %q", got, want)
	}
}

// Without a session bus, a desktop notification says so.
func TestDesktopNoBus(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	if err := desktopSink()(context.Background(), Notification{Account: "work"}); err != errNoSessionBus {
		t.Errorf("err = %v, want errNoSessionBus", err)
	}
}
