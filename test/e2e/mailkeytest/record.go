package mailkeytest

import (
	"context"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/test/e2e"
)

// EditRecord changes the stored record of account name as a test needs it (an access token
// that is due for refresh or expired), through the store itself, under the account's lock.
func (e *Env) EditRecord(ctx context.Context, name string, edit func(rec *store.Record)) {
	e.T.Helper()
	st, err := store.OpenFile(e.State, &store.FileOptions{NoKeyring: true})
	if err != nil {
		e.T.Fatal(err)
	}
	unlock, err := st.Lock(ctx, name)
	if err != nil {
		e.T.Fatal(err)
	}
	defer unlock()
	rec, err := st.Get(ctx, name)
	if err != nil {
		e.T.Fatal(err)
	}
	edit(rec)
	if err := st.Put(ctx, rec); err != nil {
		e.T.Fatal(err)
	}
}

// Due makes a stored access token look like one issued an hour ago that expires in a minute:
// still valid (the provider issued it for longer), but due for an early refresh. The margin
// follows the token's lifetime, so the time it was issued moves back an hour too.
func Due(rec *store.Record) {
	now := time.Now()
	rec.Expiry = now.Add(time.Minute)
	rec.Issued = now.Add(-time.Hour)
	rec.Created, rec.Updated, rec.LastRefresh = now.Add(-time.Hour), now.Add(-time.Hour), now.Add(-time.Hour)
}

// Expired makes a stored access token look expired, so that the next use refreshes it.
func Expired(rec *store.Record) { rec.Expiry = time.Now().Add(-time.Second) }

// WaitRefreshes waits until the stack's provider has answered n refreshes since the last
// reset of its counters (e2e.Stack.TokenStats).
func WaitRefreshes(t *testing.T, ctx context.Context, s *e2e.Stack, n int) {
	t.Helper()
	for {
		st, err := s.TokenStats(false)
		if err != nil {
			t.Fatal(err)
		}
		if st["refresh_token.success"] >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the provider answered %v, waiting for %d refreshes", st, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// HoldAnswers makes the stack's token endpoint hold every answer until ReleaseAnswers (the
// refresh tokens still rotate at once, as a provider that commits and then stalls), and resets
// its counters, so that a test decides when a refresh's answer arrives.
func HoldAnswers(t *testing.T, s *e2e.Stack) {
	t.Helper()
	if _, err := s.TokenStats(true); err != nil {
		t.Fatal(err)
	}
	if err := s.DelayTokenEndpoint(time.Hour, -1, false); err != nil {
		t.Fatal(err)
	}
}

// ReleaseAnswers lets every answer HoldAnswers held go at once, and ends the hold.
func ReleaseAnswers(t *testing.T, s *e2e.Stack) {
	t.Helper()
	if err := s.DelayTokenEndpoint(0, 0, false); err != nil {
		t.Fatal(err)
	}
}

// StoredRecord returns the stored record of account name, read through the store itself:
// unlike mailkey token, reading it never starts a refresh.
func (e *Env) StoredRecord(ctx context.Context, name string) *store.Record {
	e.T.Helper()
	st, err := store.OpenFile(e.State, &store.FileOptions{NoKeyring: true})
	if err != nil {
		e.T.Fatal(err)
	}
	rec, err := st.Get(ctx, name)
	if err != nil {
		e.T.Fatal(err)
	}
	return rec
}
