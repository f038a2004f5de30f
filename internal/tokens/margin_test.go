package tokens

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

func TestLifetime(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  store.Record
		want time.Duration
	}{
		{"issued", store.Record{Issued: t0, Expiry: t0.Add(time.Hour), LastRefresh: t0.Add(-time.Hour)}, time.Hour},
		{"older record: from the last refresh", store.Record{Expiry: t0.Add(5 * time.Minute), LastRefresh: t0, Updated: t0.Add(time.Minute)}, 5 * time.Minute},
		{"older record: from the update", store.Record{Expiry: t0.Add(time.Minute), Updated: t0}, time.Minute},
		{"no expiry", store.Record{Issued: t0}, 0},
		{"no time to count from", store.Record{Expiry: t0}, 0},
		{"expiry before issue", store.Record{Issued: t0, Expiry: t0.Add(-time.Second)}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Lifetime(&tc.rec); got != tc.want {
				t.Errorf("Lifetime = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMargin(t *testing.T) {
	issued := func(l time.Duration) *store.Record { return &store.Record{Issued: t0, Expiry: t0.Add(l)} }
	for _, tc := range []struct {
		rec    *store.Record
		margin time.Duration
		want   time.Duration
	}{
		{issued(time.Hour), DefaultMargin, DefaultMargin},
		{issued(10 * time.Minute), DefaultMargin, DefaultMargin},
		{issued(5 * time.Minute), DefaultMargin, 150 * time.Second}, // Keycloak's default lifetime
		{issued(time.Minute), DefaultMargin, 30 * time.Second},
		{issued(10 * time.Second), DefaultMargin, 5 * time.Second},
		{issued(3 * time.Second), DefaultMargin, MinMargin}, // the floor
		{issued(3 * time.Second), time.Second, time.Second}, // a configured margin below the floor stands
		{issued(time.Minute), 10 * time.Second, 10 * time.Second},
		{&store.Record{Expiry: t0.Add(time.Minute)}, DefaultMargin, DefaultMargin}, // lifetime unknown
	} {
		t.Run(fmt.Sprintf("lifetime %v margin %v", Lifetime(tc.rec), tc.margin), func(t *testing.T) {
			if got := Margin(tc.rec, tc.margin); got != tc.want {
				t.Errorf("Margin = %v, want %v", got, tc.want)
			}
		})
	}
}

// issuing returns a source that hands out tokens living l on clk, each
// with a new access token.
func issuing(clk *clock, l time.Duration) func(context.Context, int, *store.Record) (*Fresh, error) {
	return func(_ context.Context, n int, _ *store.Record) (*Fresh, error) {
		return &Fresh{AccessToken: fmt.Sprintf("at-%d", n), TokenType: "Bearer", Expiry: clk.Now().Add(l)}, nil
	}
}

// loggedIn is a record as mailkey login stores it: a token of lifetime l
// received at t0.
func loggedIn(l time.Duration) *store.Record {
	return &store.Record{Account: "work", AccessToken: "at-login", RefreshToken: oldRT, Expiry: t0.Add(l),
		Issued: t0, LastRefresh: t0, Updated: t0}
}

var lifetimes = []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, time.Hour}

// With the default margin, a caller asking for a token every 1/100 of its
// lifetime causes one refresh per token: at the point where the adaptive
// margin is reached, never with more than half the token's life left, and
// every token handed out still has the margin left. A fixed margin at or
// above the lifetime would refresh on every call.
func TestAdaptiveMarginOneRefreshPerToken(t *testing.T) {
	for _, l := range lifetimes {
		t.Run(l.String(), func(t *testing.T) {
			e := newEnv(t, loggedIn(l), nil, nil)
			e.src.fn = issuing(e.clk, l)
			margin := min(DefaultMargin, max(l/2, MinMargin))
			step := l / 100
			const span = 10 // lifetimes
			last := "at-login"
			for i := range span * 100 {
				e.clk.t = t0.Add(time.Duration(i) * step)
				before := e.st.rec("work")
				rec, err := e.m.Get(context.Background(), "work")
				if err != nil {
					t.Fatal(err)
				}
				if left := rec.Expiry.Sub(e.clk.t); left < margin {
					t.Fatalf("at %v: handed out a token with %v left, margin %v", e.clk.t.Sub(t0), left, margin)
				}
				if rec.AccessToken != last {
					left := before.Expiry.Sub(e.clk.t)
					if left > l/2 {
						t.Errorf("at %v: refreshed a token with %v of its %v left", e.clk.t.Sub(t0), left, l)
					}
					if left >= margin {
						t.Errorf("at %v: refreshed a token with %v left, before the margin %v", e.clk.t.Sub(t0), left, margin)
					}
					last = rec.AccessToken
				}
			}
			// Each token serves l - margin, to the nearest step.
			perToken := l - margin
			want := int(time.Duration(span) * l / perToken)
			if got := e.src.count(); got < want-1 || got > want+1 {
				t.Errorf("%d refreshes in %d lifetimes of %v, want about %d (one per token)", got, span, l, want)
			}
			if got := Lifetime(e.st.rec("work")); got != l {
				t.Errorf("stored record's lifetime %v, want %v", got, l)
			}
		})
	}
}

// The manager stores when the token arrived, so that the next process
// knows its lifetime.
func TestRefreshStoresIssued(t *testing.T) {
	e := newEnv(t, record(-time.Minute), notRotating, nil)
	e.clk.t = t0.Add(7 * time.Second)
	if _, err := e.m.Get(context.Background(), "work"); err != nil {
		t.Fatal(err)
	}
	if got := e.st.rec("work").Issued; !got.Equal(t0.Add(7 * time.Second)) {
		t.Errorf("Issued = %v, want %v", got, t0.Add(7*time.Second))
	}
}

// processes runs Get in early+late managers (as many processes) over one
// store at expiry. The refresh is held until the early managers have read
// the expired record, so that all of them queue on the store's lock with a
// refresh due; after it, the clock moves on by age and the late managers
// start, to find the new token at that age. It returns the number of
// refreshes.
func processes(t *testing.T, l time.Duration, early, late int, age time.Duration) int {
	t.Helper()
	st := newMemStore()
	st.put(loggedIn(l))
	clk := &clock{t: t0.Add(l)} // at expiry
	release := make(chan struct{})
	src := &fakeSource{}
	src.fn = func(ctx context.Context, k int, rec *store.Record) (*Fresh, error) {
		<-release
		return issuing(clk, l)(ctx, k, rec)
	}
	var wg sync.WaitGroup
	results := make(chan error, early+late)
	get := func() {
		m := New(st, sourcesFor(src), &Options{Now: clk.Now})
		rec, err := m.Get(context.Background(), "work")
		// A token shorter than its margin is handed out as it came.
		if err == nil && rec.Expiry.Sub(clk.Now()) < min(Margin(rec, DefaultMargin), Lifetime(rec)) {
			err = fmt.Errorf("handed out a token with %v left", rec.Expiry.Sub(clk.Now()))
		}
		results <- err
	}
	for range early {
		wg.Go(get)
	}
	for {
		if gets, _, _ := st.counts(); gets >= early+1 && src.count() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	for {
		if _, puts, _ := st.counts(); puts >= 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	clk.mu.Lock()
	clk.t = clk.t.Add(age)
	clk.mu.Unlock()
	for range late {
		wg.Go(get)
	}
	wg.Wait()
	close(results)
	for err := range results {
		if err != nil {
			t.Error(err)
		}
	}
	return src.count()
}

// Many processes at expiry make one refresh, for any lifetime: those that
// waited on the lock re-read the record and judge the new token by its own
// lifetime, as do those that start later, while it has more than half its
// life left.
func TestManyProcessesAtExpiryOneRefresh(t *testing.T) {
	for _, l := range lifetimes {
		t.Run(l.String(), func(t *testing.T) {
			age := min(DefaultMargin, l/2) - time.Second // the new token still has more than the margin left
			if got := processes(t, l, 100, 100, age); got != 1 {
				t.Errorf("200 processes at expiry with %v tokens made %d refreshes, want 1", l, got)
			}
		})
	}
}

// Tokens shorter than MinMargin are due as soon as they arrive: the
// processes queued on the lock still make one refresh, as they take the
// token another process has just stored.
func TestShortTokensOneRefreshForQueuedProcesses(t *testing.T) {
	if got := processes(t, 1500*time.Millisecond, 50, 0, 0); got != 1 {
		t.Errorf("50 processes at expiry with 1.5s tokens made %d refreshes, want 1", got)
	}
}

// A token another process stored while this one waited is taken only if
// it is still valid for a moment; one about to expire is refreshed.
func TestReplacedTokenAboutToExpireIsRefreshed(t *testing.T) {
	e := newEnv(t, loggedIn(time.Minute), nil, nil)
	e.clk.t = t0.Add(time.Minute)
	e.src.fn = issuing(e.clk, time.Minute)
	e.st.onLock = func(string) {
		r := loggedIn(time.Minute)
		r.AccessToken = "at-other"
		r.Expiry = e.clk.t.Add(replacedMinLeft / 2)
		e.st.put(r)
	}
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != "at-1" || e.src.count() != 1 {
		t.Errorf("took a token with %v left instead of refreshing", replacedMinLeft/2)
	}
}

// A server rejected a token that another process has already replaced:
// the replacement is judged by its own lifetime. A fixed margin above its
// lifetime would refresh it again.
func TestForceRefreshJudgesReplacementByItsLifetime(t *testing.T) {
	rec := loggedIn(time.Minute)
	rec.AccessToken = "at-other"
	e := newEnv(t, rec, nil, nil)
	e.src.fn = issuing(e.clk, time.Minute)
	e.clk.t = t0.Add(20 * time.Second) // 40s left, more than half the lifetime
	got, err := e.m.ForceRefresh(context.Background(), "work", "at-rejected")
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-other" || e.src.count() != 0 {
		t.Errorf("refreshed a replacement with 40s of its 1m left")
	}
	e.clk.t = t0.Add(31 * time.Second) // 29s left: inside the margin
	if got, err = e.m.ForceRefresh(context.Background(), "work", "at-rejected"); err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != "at-1" || e.src.count() != 1 {
		t.Errorf("kept a replacement with 29s of its 1m left")
	}
}
