package proxy

import (
	"sync"
	"time"
)

// maxLimiterEntries bounds the failed-login table; beyond it, entries whose
// bucket has refilled are dropped.
const maxLimiterEntries = 4096

// failureLimiter is a token bucket per source address: each failed login
// takes a token, tokens come back at burst per window, and an address with
// no token left is refused without its password being checked.
type failureLimiter struct {
	burst  float64
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
	pruned  time.Time // last full scan, at most one per window
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newFailureLimiter(burst int, window time.Duration) *failureLimiter {
	return &failureLimiter{
		burst:   float64(burst),
		window:  window,
		now:     time.Now,
		buckets: make(map[string]*bucket),
	}
}

// refill brings b up to date; the caller holds l.mu.
func (l *failureLimiter) refill(b *bucket, now time.Time) {
	elapsed := now.Sub(b.last)
	if elapsed > 0 {
		b.tokens += l.burst * elapsed.Seconds() / l.window.Seconds()
		if b.tokens > l.burst {
			b.tokens = l.burst
		}
	}
	b.last = now
}

// Allowed reports whether key may try a login now.
func (l *failureLimiter) Allowed(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return true
	}
	l.refill(b, l.now())
	return b.tokens >= 1
}

// Failed records one failed login for key.
func (l *failureLimiter) Failed(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxLimiterEntries && now.Sub(l.pruned) >= l.window {
			l.pruned = now
			l.prune(now)
		}
		for k := range l.buckets { // still full: forget someone
			if len(l.buckets) < maxLimiterEntries {
				break
			}
			delete(l.buckets, k)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	l.refill(b, now)
	b.tokens--
	if b.tokens < 0 {
		b.tokens = 0
	}
}

// prune drops buckets that are full again; the caller holds l.mu.
func (l *failureLimiter) prune(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.tokens >= l.burst {
			delete(l.buckets, k)
		}
	}
}
