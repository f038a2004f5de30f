package server

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

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
			min: needsLoginWait, max: needsLoginWait},
		{name: "refused", err: &tokens.RefusedError{Account: "work", Code: "unauthorized_client"},
			min: needsLoginWait, max: needsLoginWait},
		{name: "client rejected", err: &tokens.ClientConfigError{Account: "work", Code: "invalid_client"},
			min: needsLoginWait, max: needsLoginWait},
		{name: "retry after", err: &tokens.TransientError{Account: "work", Err: errors.New("429"), RetryAfter: 2 * time.Hour},
			min: 2 * time.Hour, max: 2 * time.Hour},
		{name: "transient", err: &tokens.TransientError{Account: "work", Err: errors.New("503")},
			min: transientWaitMin / 2, max: transientWaitMin},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRefresher("work", &dueTokens{rec: c.rec, err: c.err}, 10*time.Minute, slog.New(slog.DiscardHandler), newMetrics())
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
		10*time.Minute, slog.New(slog.DiscardHandler), newMetrics())
	var wait time.Duration
	for range 20 {
		wait = r.check(context.Background())
	}
	if wait < transientWaitMax/2 || wait > transientWaitMax {
		t.Errorf("wait after 20 failures %v, want between %v and %v", wait, transientWaitMax/2, transientWaitMax)
	}
}
