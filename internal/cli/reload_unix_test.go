//go:build !windows

package cli

import (
	"io"
	"syscall"
	"testing"

	"github.com/mailkey/mailkey/internal/testwait"
)

// While serve holds the reload signal, SIGHUP asks it to reload and ends nothing; without a
// hook, SIGHUP ends the command as before.
func TestReloadSignal(t *testing.T) {
	l := &lifecycle{}
	ctx, stop := l.watchSignals(io.Discard)
	defer stop()
	l.watch()
	requests, unhook := l.onSignal(reloadSignal)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-requests:
	case <-testwait.Context(t).Done():
		t.Fatal("no reload request after SIGHUP")
	}
	if ctx.Err() != nil {
		t.Fatal("SIGHUP ended the command while serve held it")
	}
	unhook()
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-testwait.Context(t).Done():
		t.Fatal("SIGHUP without a hook did not end the command")
	}
}
