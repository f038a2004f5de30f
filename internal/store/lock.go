package store

import (
	"context"
	"sync"
)

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
