// Package flock takes exclusive advisory file locks that serialize processes
// sharing a state folder: flock(2) on Unix, LockFileEx on Windows. A waiting
// Lock gives up when its context is done.
//
// The lock belongs to an open file, so two goroutines of one process that
// each call Lock on the same path exclude each other too; callers that want
// their own goroutines to queue without polling put a mutex in front.
package flock

import (
	"context"
	"os"
	"sync"
	"time"
)

// Polling: flock(2) cannot be interrupted by a context, so a blocked Lock
// retries a non-blocking attempt, backing off from pollMin up to pollMax.
const (
	pollMin = 5 * time.Millisecond
	pollMax = 100 * time.Millisecond
)

// Lock takes an exclusive advisory lock on the file at path (created 0600 if
// missing), waiting until ctx is done, and returns the function that releases
// it (safe to call more than once). The file is never removed: removing a lock
// file lets two processes lock two different files.
func Lock(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait := pollMin
	for {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		if ok {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, pollMax)
	}
	return sync.OnceFunc(func() {
		unlockFile(f)
		f.Close()
	}), nil
}

// TryLockFile takes an exclusive lock on the open file f without waiting,
// and reports false when another open file holds it. The lock is f's: it
// ends with UnlockFile, with f's Close, or with the process.
func TryLockFile(f *os.File) (bool, error) { return tryLock(f) }

// UnlockFile releases a lock TryLockFile took on f.
func UnlockFile(f *os.File) error { return unlockFile(f) }
