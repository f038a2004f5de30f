// Package testwait bounds the waits of tests by the test binary's own deadline (go test
// -timeout) instead of a fixed number of seconds, so that a slow or busy machine makes a
// test slower, never red. A broken test still fails, with its own message, a little before
// the binary's timeout would kill it. It is for tests only.
package testwait

import (
	"context"
	"testing"
	"time"
)

// Grace bounds: what is left before the binary's deadline for the test to report its
// failure (and for the tests that run after it).
const (
	minGrace = time.Second
	maxGrace = time.Minute
)

// Deadline returns when a wait in t should give up: shortly before the test binary's
// deadline (a tenth of the time left, between one second and a minute). It is the zero
// time when the binary has no deadline (-timeout 0): then waits do not give up.
func Deadline(t testing.TB) time.Time {
	dt, ok := t.(interface{ Deadline() (time.Time, bool) })
	if !ok {
		return time.Time{}
	}
	d, ok := dt.Deadline()
	if !ok {
		return time.Time{}
	}
	grace := min(max(time.Until(d)/10, minGrace), maxGrace)
	return d.Add(-grace)
}

// Context returns a context that ends at Deadline or when t ends.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	if d := Deadline(t); !d.IsZero() {
		ctx, cancel = context.WithDeadline(context.Background(), d)
	}
	t.Cleanup(cancel)
	return ctx
}

// pollInterval is how often WaitFor looks again; it only sets the pace, it bounds nothing.
const pollInterval = 10 * time.Millisecond

// WaitFor polls cond until it holds, and fails t (naming what) if it still does not at
// Deadline.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	d := Deadline(t)
	for !cond() {
		if !d.IsZero() && time.Now().After(d) {
			t.Fatalf("gave up waiting for %s at the test's deadline", what)
		}
		time.Sleep(pollInterval)
	}
}
