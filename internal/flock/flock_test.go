package flock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// A held lock keeps a second Lock waiting until its context is done; once
// released, the lock can be taken again.
func TestLockExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if u, err := Lock(ctx, path); !errors.Is(err, context.DeadlineExceeded) {
		if u != nil {
			u()
		}
		t.Fatalf("second Lock while held: %v, want %v", err, context.DeadlineExceeded)
	}
	unlock()
	unlock() // a second call is harmless
	again, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}

// A waiting Lock takes the lock as soon as the holder releases it.
func TestLockWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		u, err := Lock(context.Background(), path)
		if err == nil {
			u()
		}
		got <- err
	}()
	unlock()
	if err := <-got; err != nil {
		t.Fatalf("waiting Lock: %v", err)
	}
}

// The lock file is created private and stays after unlock.
func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("lock file gone after unlock: %v", err)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		t.Errorf("lock file mode %v, want no group or other access", perm)
	}
	if _, err := Lock(context.Background(), filepath.Join(t.TempDir(), "missing", "x.lock")); err == nil {
		t.Error("Lock in a missing folder succeeded")
	}
}
