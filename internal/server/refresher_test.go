package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// dueTokens answers RefreshDue with a fixed record or error.
type dueTokens struct {
	fakeTokens
	rec *store.Record
	err error
}

func (d *dueTokens) RefreshDue(context.Context, string, time.Duration) (*store.Record, error) {
	return d.rec, d.err
}

// TestRefresherWaits pins the wait after each kind of check. Only a fresh
// token is looked at again within maxCheckWait; a failure asks the provider
// again on the next check, so its backoff, the provider's Retry-After and
// the wait after a refusal must not be cut short to maxCheckWait.
func TestRefresherWaits(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name     string
		rec      *store.Record
		err      error
		min, max time.Duration
	}{
		{name: "fresh", rec: &store.Record{AccessToken: tok1, Expiry: time.Now().Add(2 * time.Hour)},
			min: maxCheckWait, max: maxCheckWait},
		{name: "needs login", err: &tokens.NeedsLoginError{Account: "work", Code: "invalid_grant"},
			min: loginWatchWait, max: loginWatchWait},
		{name: "refused", err: &tokens.RefusedError{Account: "work", Code: "unauthorized_client"},
			min: holdOffWait, max: holdOffWait},
		{name: "client rejected", err: &tokens.ClientConfigError{Account: "work", Code: "invalid_client"},
			min: holdOffWait, max: holdOffWait},
		{name: "token endpoint changed", err: &tokens.EndpointChangedError{Account: "work", Stored: "https://a.example/token", Configured: "https://b.example/token"},
			min: holdOffWait, max: holdOffWait},
		{name: "retry after", err: &tokens.TransientError{Account: "work", Err: errors.New("429"), RetryAfter: 2 * time.Hour},
			min: 2 * time.Hour, max: 2 * time.Hour},
		{name: "transient", err: &tokens.TransientError{Account: "work", Err: errors.New("503")},
			min: transientWaitMin / 2, max: transientWaitMin},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRefresher("work", &dueTokens{rec: c.rec, err: c.err}, 5*time.Minute, slog.New(slog.DiscardHandler), newMetrics())
			if got := r.check(ctx); got < c.min || got > c.max {
				t.Errorf("wait %v, want between %v and %v", got, c.min, c.max)
			}
		})
	}
}

// Transient failures in a row back off up to transientWaitMax, which is
// beyond maxCheckWait.
func TestRefresherBacksOff(t *testing.T) {
	r := newRefresher("work", &dueTokens{err: &tokens.TransientError{Account: "work", Err: errors.New("503")}},
		5*time.Minute, slog.New(slog.DiscardHandler), newMetrics())
	var wait time.Duration
	for range 20 {
		wait = r.check(context.Background())
	}
	if wait < transientWaitMax/2 || wait > transientWaitMax {
		t.Errorf("wait after 20 failures %v, want between %v and %v", wait, transientWaitMax/2, transientWaitMax)
	}
}

// memStore is an in-memory store.Store for a real token manager.
type memStore struct {
	mu   sync.Mutex
	recs map[string]store.Record
	lock chan struct{}
}

func (s *memStore) Get(_ context.Context, account string) (*store.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[account]
	if !ok {
		return nil, store.ErrNotFound
	}
	return &r, nil
}

func (s *memStore) Put(_ context.Context, rec *store.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[rec.Account] = *rec
	return nil
}

func (s *memStore) Delete(context.Context, string) error   { return nil }
func (s *memStore) List(context.Context) ([]string, error) { return []string{"work"}, nil }
func (s *memStore) Protection() string                     { return "memory (tests)" }
func (s *memStore) Lock(context.Context, string) (func(), error) {
	s.lock <- struct{}{}
	return func() { <-s.lock }, nil
}

// simClock is a settable clock.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// lifetimeSource issues tokens that live l on clk and records how much
// life the token it replaced had left.
type lifetimeSource struct {
	clk  *simClock
	l    time.Duration
	n    int
	left []time.Duration
}

func (s *lifetimeSource) Refresh(_ context.Context, rec *store.Record) (*tokens.Fresh, error) {
	s.n++
	s.left = append(s.left, rec.Expiry.Sub(s.clk.Now()))
	return &tokens.Fresh{AccessToken: fmt.Sprintf("at-%d", s.n), Expiry: s.clk.Now().Add(s.l)}, nil
}

// TestRefresherOncePerToken runs serve's refresher and a client login every
// 1/50 of a token's lifetime against a real token manager on a simulated
// clock, with the default margin. The refresher replaces each token once,
// never with more than half its life left, and ahead of the margin, so that
// no login waits for a refresh; a lifetime at or under the window neither
// makes it refresh in a loop nor makes every login refresh.
func TestRefresherOncePerToken(t *testing.T) {
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	const margin = config.DefaultRefreshMargin
	for _, l := range []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, time.Hour} {
		t.Run(l.String(), func(t *testing.T) {
			ctx := context.Background()
			clk := &simClock{t: t0}
			st := &memStore{recs: map[string]store.Record{}, lock: make(chan struct{}, 1)}
			st.recs["work"] = store.Record{Account: "work", AccessToken: "at-login", RefreshToken: "rt", Expiry: t0.Add(l), Issued: t0}
			src := &lifetimeSource{clk: clk, l: l}
			mgr := tokens.New(st, func(string) (tokens.Source, error) { return src, nil }, &tokens.Options{Margin: margin, Now: clk.Now})
			r := newRefresher("work", mgr, margin, slog.New(slog.DiscardHandler), newMetrics())
			r.now = clk.Now

			const span = 10 // lifetimes
			end := t0.Add(span * l)
			nextCheck, nextLogin := t0, t0
			for nextCheck.Before(end) || nextLogin.Before(end) {
				if !nextCheck.After(nextLogin) {
					clk.set(nextCheck)
					nextCheck = nextCheck.Add(r.check(ctx))
					continue
				}
				clk.set(nextLogin)
				before := src.n
				rec, err := mgr.Get(ctx, "work")
				if err != nil {
					t.Fatal(err)
				}
				if src.n != before {
					t.Fatalf("at %v a client login had to refresh", clk.Now().Sub(t0))
				}
				if rec.Expiry.Sub(clk.Now()) < tokens.Margin(rec, margin) {
					t.Fatalf("at %v a login got a token inside the margin", clk.Now().Sub(t0))
				}
				nextLogin = nextLogin.Add(l / 50)
			}
			for i, left := range src.left {
				if left > l/2 || left <= 0 {
					t.Errorf("refresh %d: the token had %v of its %v left", i+1, left, l)
				}
			}
			// Each token serves its lifetime less the window, and up to a
			// quarter of the window's lead over the margin longer.
			window := min(2*margin, l/2)
			lead := window - min(margin, l/2)
			lo, hi := span*l/(l-window+lead/4+time.Second)-1, span*l/(l-window)+1
			if n := time.Duration(src.n); n < lo || n > hi {
				t.Errorf("%d refreshes in %d lifetimes of %v, want %d to %d", src.n, span, l, lo, hi)
			}
		})
	}
}
