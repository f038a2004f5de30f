package tokens

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// A caller that gives up (a signal cancels its context) does not abandon
// the request it started: Drain waits until the rotated token is stored.
func TestDrainSeesSentRequestThrough(t *testing.T) {
	sent := make(chan struct{})
	answer := make(chan struct{})
	e := newEnv(t, record(-time.Minute), func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		close(sent)
		<-answer
		return rotating(ctx, n, rec)
	}, nil)

	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan error, 1)
	go func() {
		_, err := e.m.Get(ctx, "work")
		got <- err
	}()
	<-sent
	cancel() // the signal
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get after cancel: %v", err)
	}
	if in := e.m.InFlight(); !slices.Equal(in, []string{"work"}) {
		t.Fatalf("InFlight = %q", in)
	}

	// Drain with a deadline that has passed reports what is at risk.
	expired, cancelExpired := context.WithCancel(context.Background())
	cancelExpired()
	if in, err := e.m.Drain(expired); !errors.Is(err, context.Canceled) || !slices.Equal(in, []string{"work"}) {
		t.Fatalf("Drain(done ctx) = %q, %v", in, err)
	}

	drained := make(chan error, 1)
	go func() {
		_, err := e.m.Drain(context.Background())
		drained <- err
	}()
	close(answer) // the provider answers after the caller left
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
	if rec := e.st.rec("work"); rec.RefreshToken != newRT || rec.AccessToken != newAT {
		t.Fatal("the rotated refresh token was not stored before Drain returned")
	}
	if in := e.m.InFlight(); len(in) != 0 {
		t.Errorf("InFlight after Drain = %q", in)
	}
}

// After Drain no request is sent: one that could not be seen through
// would risk the grant.
func TestDrainStopsNewRequests(t *testing.T) {
	e := newEnv(t, record(-time.Minute), rotating, nil)
	if in, err := e.m.Drain(context.Background()); err != nil || in != nil {
		t.Fatalf("Drain of an idle manager = %q, %v", in, err)
	}
	_, err := e.m.Get(context.Background(), "work")
	if !errors.Is(err, ErrClosing) {
		t.Fatalf("Get after Drain: %v, want ErrClosing", err)
	}
	if n := e.src.count(); n != 0 {
		t.Errorf("Source called %d times after Drain", n)
	}
	if rec := e.st.rec("work"); rec.RefreshToken != oldRT {
		t.Error("the stored record changed")
	}
}

func TestPeek(t *testing.T) {
	for _, tc := range []struct {
		expiresIn time.Duration
		noAT      bool
		want      Freshness
	}{
		{time.Hour, false, Good},
		{DefaultMargin + time.Second, false, Good},
		{DefaultMargin - time.Second, false, Due},
		{time.Second, false, Due},
		{0, false, Expired},
		{-time.Minute, false, Expired},
		{time.Hour, true, Expired},
	} {
		rec := record(tc.expiresIn)
		if tc.noAT {
			rec.AccessToken = ""
		}
		e := newEnv(t, rec, rotating, nil)
		got, f, err := e.m.Peek(context.Background(), "work")
		if err != nil || f != tc.want || got.AccessToken != rec.AccessToken {
			t.Errorf("expires in %s (no token %v): Peek = %v, %v; want %v", tc.expiresIn, tc.noAT, f, err, tc.want)
		}
		if _, puts, locks := e.st.counts(); puts != 0 || locks != 0 || e.src.count() != 0 {
			t.Errorf("Peek wrote, locked or refreshed")
		}
	}
	e := newEnv(t, nil, rotating, nil)
	var nl *NeedsLoginError
	if _, _, err := e.m.Peek(context.Background(), "work"); !errors.As(err, &nl) || !errors.Is(err, ErrNoToken) {
		t.Errorf("Peek without a record: %v", err)
	}
}
