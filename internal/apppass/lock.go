package apppass

import (
	"context"
	"os"
	"sync"
	"time"
)

// Lock polling: flock(2) cannot be interrupted by a context, so a blocked
// lock retries a non-blocking attempt, backing off up to lockPollMax.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// lockPath takes an exclusive advisory lock on the file at path (created
// 0600 if missing), waiting until ctx is done.
func lockPath(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	wait := lockPollMin
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
		wait = min(2*wait, lockPollMax)
	}
	return sync.OnceFunc(func() {
		unlockFile(f)
		f.Close()
	}), nil
}
