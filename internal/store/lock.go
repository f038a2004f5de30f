package store

import (
	"context"
	"os"
	"sync"
	"time"
)

// Lock polling: flock(2) cannot be interrupted by a context, so a blocked
// Lock retries a non-blocking attempt, backing off up to lockPollMax.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// lockPath takes an exclusive advisory lock on the file at path (created
// 0600 if missing), waiting until ctx is done. The file is never removed:
// removing a lock file lets two processes lock two different files.
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

// localLocks serializes the goroutines of one FileStore per account, so
// they queue on a channel (cancellable) rather than poll the file lock.
type localLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (l *localLocks) acquire(ctx context.Context, account string) (func(), error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[string]chan struct{})
	}
	ch, ok := l.m[account]
	if !ok {
		ch = make(chan struct{}, 1)
		l.m[account] = ch
	}
	l.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
