package tokens

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/store"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	oldAT = "ya29.old-access-token-secret-1111"
	oldRT = "1//old-refresh-token-secret-2222"
	newAT = "ya29.new-access-token-secret-3333"
	newRT = "1//new-refresh-token-secret-4444"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	st   *memStore
	src  *fakeSource
	clk  *clock
	sl   *sleeps
	logs *syncBuffer
	m    *Manager
}

// newEnv builds a Manager over a memStore holding rec (if not nil).
func newEnv(t *testing.T, rec *store.Record, fn func(ctx context.Context, n int, rec *store.Record) (*Fresh, error), tune func(*Options)) *env {
	t.Helper()
	e := &env{
		st:   newMemStore(),
		src:  &fakeSource{fn: fn},
		clk:  &clock{t: t0},
		sl:   &sleeps{},
		logs: &syncBuffer{},
	}
	if rec != nil {
		e.st.put(rec)
	}
	opts := &Options{
		Now:    e.clk.Now,
		Sleep:  e.sl.Sleep,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tune != nil {
		tune(opts)
	}
	e.m = New(e.st, sourcesFor(e.src), opts)
	return e
}

func record(expiresIn time.Duration) *store.Record {
	return &store.Record{
		Account:      "work",
		AccessToken:  oldAT,
		TokenType:    "Bearer",
		Expiry:       t0.Add(expiresIn),
		RefreshToken: oldRT,
		Scopes:       []string{"https://mail.google.com/"},
		TokenURL:     "https://oauth2.googleapis.com/token",
		Identity:     "user@example.com",
		Created:      t0.Add(-48 * time.Hour),
		Updated:      t0.Add(-time.Hour),
		LastRefresh:  t0.Add(-time.Hour),
	}
}

// rotating returns a new access token and a rotated refresh token.
func rotating(context.Context, int, *store.Record) (*Fresh, error) {
	return &Fresh{AccessToken: newAT, TokenType: "Bearer", RefreshToken: newRT, Expiry: t0.Add(time.Hour)}, nil
}

// notRotating returns a new access token only.
func notRotating(context.Context, int, *store.Record) (*Fresh, error) {
	return &Fresh{AccessToken: newAT, TokenType: "Bearer", Expiry: t0.Add(time.Hour)}, nil
}

func failing(err error) func(context.Context, int, *store.Record) (*Fresh, error) {
	return func(context.Context, int, *store.Record) (*Fresh, error) { return nil, err }
}

var errNetwork = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func TestGetFreshTokenNoRefresh(t *testing.T) {
	e := newEnv(t, record(time.Hour), rotating, nil)
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != oldAT {
		t.Errorf("got a different access token")
	}
	if n := e.src.count(); n != 0 {
		t.Errorf("Source called %d times, want 0", n)
	}
	if _, puts, locks := e.st.counts(); puts != 0 || locks != 0 {
		t.Errorf("fresh path took %d locks and made %d puts, want none", locks, puts)
	}
}

func TestGetMargin(t *testing.T) {
	for _, tc := range []struct {
		name      string
		margin    time.Duration
		expiresIn time.Duration
		refresh   bool
	}{
		{"default margin, exactly 5m left", 0, 5 * time.Minute, false},
		{"default margin, 4m59s left", 0, 5*time.Minute - time.Second, true},
		{"expired", 0, -time.Minute, true},
		{"margin 10m, 8m left", 10 * time.Minute, 8 * time.Minute, true},
		{"margin 1m, 2m left", time.Minute, 2 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, record(tc.expiresIn), notRotating, func(o *Options) { o.Margin = tc.margin })
			rec, err := e.m.Get(context.Background(), "work")
			if err != nil {
				t.Fatal(err)
			}
			if got := e.src.count() == 1; got != tc.refresh {
				t.Errorf("refreshed = %v, want %v", got, tc.refresh)
			}
			want := oldAT
			if tc.refresh {
				want = newAT
			}
			if rec.AccessToken != want {
				t.Errorf("wrong access token handed out (refresh=%v)", tc.refresh)
			}
		})
	}
}

func TestGetRotatedRefreshTokenPersistedBeforeReturn(t *testing.T) {
	e := newEnv(t, record(-time.Minute), nil, nil)
	events := &eventLog{}
	e.st.events = events
	e.src.fn = func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		events.add("refresh")
		return &Fresh{AccessToken: newAT, TokenType: "Bearer", RefreshToken: newRT,
			Expiry: t0.Add(time.Hour), RefreshExpiry: t0.Add(7 * 24 * time.Hour)}, nil
	}
	rec, err := e.m.Get(context.Background(), "work")
	events.add("returned " + rec.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"refresh", "put " + newAT + " " + newRT, "returned " + newAT}
	if got := events.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("events = %q, want %q", got, want)
	}
	stored := e.st.rec("work")
	if stored.RefreshToken != newRT || stored.AccessToken != newAT {
		t.Errorf("store does not hold the rotated tokens")
	}
	if !stored.RefreshExpiry.Equal(t0.Add(7 * 24 * time.Hour)) {
		t.Errorf("RefreshExpiry = %v, want %v", stored.RefreshExpiry, t0.Add(7*24*time.Hour))
	}
	if !stored.LastRefresh.Equal(t0) || !stored.Updated.Equal(t0) {
		t.Errorf("LastRefresh %v, Updated %v, want both %v", stored.LastRefresh, stored.Updated, t0)
	}
	if !stored.Created.Equal(t0.Add(-48 * time.Hour)) {
		t.Errorf("Created changed to %v", stored.Created)
	}
	if !reflect.DeepEqual(stored.Scopes, []string{"https://mail.google.com/"}) {
		t.Errorf("Scopes = %q, want the old ones kept", stored.Scopes)
	}
	if stored.Identity != "user@example.com" || stored.TokenURL == "" {
		t.Errorf("refresh lost Identity or TokenURL")
	}
	// The Source saw the old refresh token and was given a copy.
	if seen := e.src.seen[0]; seen.RefreshToken != oldRT {
		t.Errorf("Source did not get the stored refresh token")
	}
	// Google's Testing-status expiry is explained in the log.
	if logs := e.logs.String(); !strings.Contains(logs, "Testing") || !strings.Contains(logs, "level=WARN") {
		t.Errorf("no refresh-expiry warning in logs:\n%s", logs)
	}
}

func TestGetKeepsRefreshTokenWhenNotRotated(t *testing.T) {
	old := record(-time.Minute)
	old.RefreshExpiry = t0.Add(72 * time.Hour)
	e := newEnv(t, old, func(context.Context, int, *store.Record) (*Fresh, error) {
		return &Fresh{AccessToken: newAT, TokenType: "Bearer", Expiry: t0.Add(time.Hour),
			Scopes: []string{"a", "b"}, Identity: "other@example.com"}, nil
	}, nil)
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	stored := e.st.rec("work")
	if rec.RefreshToken != oldRT || stored.RefreshToken != oldRT {
		t.Errorf("refresh token not kept when the provider returned none")
	}
	if !stored.RefreshExpiry.Equal(t0.Add(72 * time.Hour)) {
		t.Errorf("RefreshExpiry of the kept refresh token lost")
	}
	if !reflect.DeepEqual(stored.Scopes, []string{"a", "b"}) || stored.Identity != "other@example.com" {
		t.Errorf("new scopes or identity not stored: %q %q", stored.Scopes, stored.Identity)
	}
}

func TestGetAppOnlyMintsWithoutRefreshToken(t *testing.T) {
	old := record(-time.Minute)
	old.RefreshToken = ""
	e := newEnv(t, old, notRotating, nil)
	for range 3 {
		rec, err := e.m.Get(context.Background(), "work")
		if err != nil {
			t.Fatal(err)
		}
		if rec.AccessToken != newAT || rec.RefreshToken != "" {
			t.Fatalf("unexpected record after minting")
		}
	}
	if n := e.src.count(); n != 1 {
		t.Errorf("Source called %d times, want 1 (the minted token is cached)", n)
	}
}

func TestGetConcurrentSingleRefresh(t *testing.T) {
	const callers = 50
	release := make(chan struct{})
	e := newEnv(t, record(-time.Minute), func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		<-release
		return rotating(ctx, n, rec)
	}, nil)

	var wg sync.WaitGroup
	errs := make(chan error, callers)
	tokens := make(chan string, callers)
	for range callers {
		wg.Go(func() {
			rec, err := e.m.Get(context.Background(), "work")
			if err != nil {
				errs <- err
				return
			}
			tokens <- rec.AccessToken
		})
	}
	// Hold the refresh until every caller has read the expired record
	// (50 reads plus the flight's re-read under the lock), so they all
	// want a refresh at the same time.
	for {
		if gets, _, _ := e.st.counts(); gets >= callers+1 && e.src.count() == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	close(tokens)
	for err := range errs {
		t.Error(err)
	}
	for tok := range tokens {
		if tok != newAT {
			t.Errorf("a caller got the old token")
		}
	}
	if n := e.src.count(); n != 1 {
		t.Errorf("Source called %d times for %d concurrent callers, want 1", n, callers)
	}
	// Callers shared the flight rather than queueing on the store's lock
	// one by one (which would also give one refresh, but 50 locks). A
	// caller that read the store just before the flight ended may start
	// its own, so this is "far fewer", not "exactly one".
	if _, _, locks := e.st.counts(); locks >= callers/2 {
		t.Errorf("%d store locks for %d concurrent callers: no single flight", locks, callers)
	}
}

func TestTwoManagersOneStoreOneRefresh(t *testing.T) {
	st := newMemStore()
	st.put(record(-time.Minute))
	locks := make(chan string, 10)
	st.onLock = func(a string) { locks <- a }

	entered := make(chan struct{})
	release := make(chan struct{})
	src := &fakeSource{fn: func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		close(entered) // a second call would panic: that is a failure too
		<-release
		return rotating(ctx, n, rec)
	}}
	clk := &clock{t: t0}
	a := New(st, sourcesFor(src), &Options{Now: clk.Now})
	b := New(st, sourcesFor(src), &Options{Now: clk.Now})

	type result struct {
		rec *store.Record
		err error
	}
	resA, resB := make(chan result, 1), make(chan result, 1)
	go func() {
		r, err := a.Get(context.Background(), "work")
		resA <- result{r, err}
	}()
	<-locks // a takes the store lock
	<-entered
	go func() {
		r, err := b.Get(context.Background(), "work")
		resB <- result{r, err}
	}()
	<-locks // b waits for the store lock while a refreshes
	close(release)

	for _, ch := range []chan result{resA, resB} {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.rec.AccessToken != newAT || r.rec.RefreshToken != newRT {
			t.Errorf("a manager did not get the refreshed tokens")
		}
	}
	if n := src.count(); n != 1 {
		t.Errorf("Source called %d times by two managers, want 1", n)
	}
}

// An app-only source (its errors go through Refusal) has no grant to lose:
// a permanent failure is returned as *RefusedError, nothing is marked, and
// the next call asks the provider again.
func TestRefusalIsNotNeedsLogin(t *testing.T) {
	perm := &oauthErr{code: "unauthorized_client", desc: "Client is unauthorized", permanent: true}
	fixed := false
	e := newEnv(t, &store.Record{Account: "work"}, func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		if fixed {
			return notRotating(ctx, n, rec)
		}
		return nil, Refusal(perm)
	}, nil)

	_, err := e.m.Get(context.Background(), "work")
	var rf *RefusedError
	if !errors.As(err, &rf) || rf.Code != "unauthorized_client" || rf.Reason != "Client is unauthorized" {
		t.Fatalf("err = %v, want *RefusedError", err)
	}
	if want := "account work: the provider refused to issue a token: unauthorized_client: Client is unauthorized"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	var nl *NeedsLoginError
	if errors.As(err, &nl) || !errors.Is(err, perm) {
		t.Errorf("err = %#v: want the refusal wrapping the provider's error, not NeedsLoginError", err)
	}
	if len(e.sl.list()) != 0 {
		t.Errorf("a permanent refusal was retried")
	}
	if stored := e.st.rec("work"); stored.NeedsLogin || stored.Reason != "" {
		t.Errorf("store marked: NeedsLogin %v Reason %q", stored.NeedsLogin, stored.Reason)
	}

	// Once the provider side is fixed, the next call just works.
	fixed = true
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil || rec.AccessToken != newAT {
		t.Fatalf("after the fix: %v", err)
	}
	if n := e.src.count(); n != 2 {
		t.Errorf("Source called %d times, want 2", n)
	}
}

func TestPermanentFailureMarksNeedsLogin(t *testing.T) {
	perm := &oauthErr{code: "invalid_grant", desc: "Token has been expired or revoked.", permanent: true}
	e := newEnv(t, record(-time.Minute), failing(perm), nil)

	_, err := e.m.Get(context.Background(), "work")
	var nl *NeedsLoginError
	if !errors.As(err, &nl) {
		t.Fatalf("err = %v, want *NeedsLoginError", err)
	}
	if want := `account work needs a new login: invalid_grant: Token has been expired or revoked.`; err.Error() != want {
		t.Errorf("message = %q, want %q", err.Error(), want)
	}
	if nl.Code != "invalid_grant" || nl.Reason != "Token has been expired or revoked." {
		t.Errorf("Code %q Reason %q", nl.Code, nl.Reason)
	}
	if !errors.Is(err, perm) {
		t.Errorf("NeedsLoginError does not wrap the refresh error")
	}
	if len(e.sl.list()) != 0 {
		t.Errorf("a permanent failure was retried")
	}

	stored := e.st.rec("work")
	if !stored.NeedsLogin || stored.Reason != "invalid_grant: Token has been expired or revoked." {
		t.Errorf("store: NeedsLogin %v Reason %q", stored.NeedsLogin, stored.Reason)
	}
	if stored.RefreshToken != oldRT {
		t.Errorf("refresh token removed from the store")
	}

	// Later calls fail at once, without asking the provider.
	for _, call := range []func() (*store.Record, error){
		func() (*store.Record, error) { return e.m.Get(context.Background(), "work") },
		func() (*store.Record, error) { return e.m.ForceRefresh(context.Background(), "work", oldAT) },
		func() (*store.Record, error) { return e.m.RefreshDue(context.Background(), "work", time.Hour) },
	} {
		_, err = call()
		if !errors.As(err, &nl) || nl.Code != "invalid_grant" || nl.Reason != "Token has been expired or revoked." {
			t.Errorf("err = %v, want the stored NeedsLoginError", err)
		}
	}
	if n := e.src.count(); n != 1 {
		t.Errorf("Source called %d times, want 1", n)
	}
}

// TestStoredNeedsLoginKeepsCode pins a bug: a dead grant got a
// NeedsLoginError with its code the first time, and with no code (and the
// code inside Reason) on every later call, read from the store.
func TestStoredNeedsLoginKeepsCode(t *testing.T) {
	perm := &oauthErr{code: "consent_required", desc: "The requested scope is invalid.", permanent: true}
	e := newEnv(t, record(-time.Minute), failing(perm), nil)
	for i := range 2 {
		_, err := e.m.Get(context.Background(), "work")
		var nl *NeedsLoginError
		if !errors.As(err, &nl) {
			t.Fatalf("call %d: err = %v, want *NeedsLoginError", i+1, err)
		}
		if nl.Code != "consent_required" || nl.Reason != "The requested scope is invalid." {
			t.Errorf("call %d: Code %q Reason %q, want consent_required and the description", i+1, nl.Code, nl.Reason)
		}
	}
	if n := e.src.count(); n != 1 {
		t.Errorf("Source called %d times, want 1", n)
	}
}

// TestClassification is the table of what a refresh error means: a dead
// grant needs a login, a rejected client or scope is configuration that
// keeps the grant, everything else is transient.
func TestClassification(t *testing.T) {
	perm := func(code, desc string) error { return &oauthErr{code: code, desc: desc, permanent: true} }
	for _, tc := range []struct {
		name  string
		err   error
		class class
		retry time.Duration
	}{
		{"invalid_grant", &oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "AADSTS70043: expired"}, classDeadGrant, 0},
		{"invalid_client", &oauth2.RetrieveError{ErrorCode: "invalid_client"}, classClient, 0},
		{"unauthorized_client", &oauth2.RetrieveError{ErrorCode: "unauthorized_client"}, classClient, 0},
		{"invalid_scope", &oauth2.RetrieveError{ErrorCode: "invalid_scope", ErrorDescription: "refresh token missing requested scope"}, classClient, 0},
		{"consent revoked", &oauth2.RetrieveError{ErrorCode: "interaction_required", ErrorDescription: "AADSTS65001"}, classDeadGrant, 0},
		{"invalid_request", &oauth2.RetrieveError{ErrorCode: "invalid_request"}, classTransient, 0},
		{"429 seconds", &oauth2.RetrieveError{Response: &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"12"}}}}, classTransient, 12 * time.Second},
		{"503 date", &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {t0.Add(90 * time.Second).Format(http.TimeFormat)}}}}, classTransient, 90 * time.Second},
		{"self-classified wins", &oauthErr{code: "invalid_grant", permanent: false}, classTransient, 0},
		{"self-classified client, transient", &oauthErr{code: "invalid_client", permanent: false}, classTransient, 0},
		{"wrapped", errors.Join(errors.New("context"), &oauthErr{code: "x", permanent: true, retryAfter: time.Second}), classDeadGrant, time.Second},
		{"unknown", errNetwork, classTransient, 0},
		{"deadline", context.DeadlineExceeded, classTransient, 0},

		{"oauth invalid_grant", perm("invalid_grant", "Token has been expired or revoked."), classDeadGrant, 0},
		{"oauth interaction_required", perm("interaction_required", "AADSTS50076: MFA required"), classDeadGrant, 0},
		{"oauth consent_required", perm("consent_required", ""), classDeadGrant, 0},
		{"oauth login_required", perm("login_required", ""), classDeadGrant, 0},
		{"oauth no code", perm("", "no refresh token stored"), classDeadGrant, 0},
		{"oauth invalid_client", perm("invalid_client", "client authentication failed"), classClient, 0},
		{"oauth unauthorized_client", perm("unauthorized_client", ""), classClient, 0},
		{"oauth invalid_scope", perm("invalid_scope", "refresh token missing requested scope"), classClient, 0},
		{"AADSTS7000215 invalid secret", perm("invalid_client", "AADSTS7000215: Invalid client secret provided."), classClient, 0},
		{"AADSTS7000222 expired secret", perm("invalid_client", "AADSTS7000222: The provided client secret keys for app are expired."), classClient, 0},
		{"AADSTS7000218 secret required", perm("invalid_client", "AADSTS7000218: The request body must contain client_assertion or client_secret."), classClient, 0},
		{"AADSTS700027 bad assertion", perm("invalid_client", "AADSTS700027: Client assertion contains an invalid signature."), classClient, 0},
		{"AADSTS700024 assertion time", perm("invalid_client", "AADSTS700024: Client assertion is not within its valid time range."), classClient, 0},
		{"AADSTS700016 no such app", perm("unauthorized_client", "AADSTS700016: Application not found in the directory."), classClient, 0},
		{"AADSTS7000112 app disabled", perm("unauthorized_client", "AADSTS7000112: Application is disabled."), classClient, 0},
		{"client AADSTS under invalid_grant", perm("invalid_grant", "AADSTS7000222: The provided client secret keys are expired."), classClient, 0},
		{"AADSTS70043 stays a dead grant", perm("invalid_grant", "AADSTS70043: The refresh token has expired."), classDeadGrant, 0},
		{"AADSTS prefix is not a match", perm("invalid_grant", "AADSTS70002150: something else"), classDeadGrant, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := classify(tc.err, t0)
			if c.class != tc.class || c.retryAfter != tc.retry {
				t.Errorf("classify = class %v retry %v, want %v %v", c.class, c.retryAfter, tc.class, tc.retry)
			}
		})
	}
}

// TestClientConfigKeepsGrant pins a bug: one invalid_client answer marked
// the account "needs login" for good, the still valid access token was not
// handed out, and later calls never asked the provider again.
func TestClientConfigKeepsGrant(t *testing.T) {
	bad := &oauthErr{code: "invalid_client", desc: "AADSTS7000222: The provided client secret keys are expired.", permanent: true}
	fixed := false
	old := record(2 * time.Minute) // inside the margin, still valid
	e := newEnv(t, old, func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		if fixed {
			return rotating(ctx, n, rec)
		}
		return nil, bad
	}, nil)

	// A valid token is handed out while the client is rejected.
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil || rec.AccessToken != oldAT {
		t.Fatalf("Get with a valid token: %v", err)
	}
	if !strings.Contains(e.logs.String(), "client_secret") {
		t.Errorf("the warning does not say what to fix:\n%s", e.logs.String())
	}
	// Callers that need a fresh token get the configuration error, at once.
	for name, call := range map[string]func() (*store.Record, error){
		"ForceRefresh": func() (*store.Record, error) { return e.m.ForceRefresh(context.Background(), "work", oldAT) },
		"RefreshDue":   func() (*store.Record, error) { return e.m.RefreshDue(context.Background(), "work", time.Hour) },
	} {
		_, err := call()
		var ce *ClientConfigError
		if !errors.As(err, &ce) || ce.Code != "invalid_client" || !errors.Is(err, bad) {
			t.Fatalf("%s: err = %v, want *ClientConfigError wrapping the provider's error", name, err)
		}
		var nl *NeedsLoginError
		if errors.As(err, &nl) {
			t.Errorf("%s: a client error became NeedsLoginError", name)
		}
	}
	// An expired token: the configuration error, not retried, nothing marked.
	e.clk.t = t0.Add(3 * time.Minute)
	_, err = e.m.Get(context.Background(), "work")
	var ce *ClientConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("Get with an expired token: err = %v, want *ClientConfigError", err)
	}
	if want := "account work: the provider rejected the app's client credentials: invalid_client: AADSTS7000222: The provided client secret keys are expired."; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	if len(e.sl.list()) != 0 {
		t.Errorf("a client error was retried with backoff: %v", e.sl.list())
	}
	if n := e.src.count(); n != 4 {
		t.Errorf("Source called %d times, want 4 (every call asks again)", n)
	}
	if !reflect.DeepEqual(e.st.rec("work"), old) {
		t.Errorf("stored record changed: %+v", e.st.rec("work"))
	}

	// Once the secret is fixed, the next call refreshes with the kept grant.
	fixed = true
	rec, err = e.m.Get(context.Background(), "work")
	if err != nil || rec.AccessToken != newAT {
		t.Fatalf("after the fix: %v", err)
	}
	if got := e.st.rec("work"); got.RefreshToken != newRT || got.NeedsLogin {
		t.Errorf("after the fix: stored %+v", got)
	}
}

func TestInvalidScopeKeepsGrant(t *testing.T) {
	bad := &oauthErr{code: "invalid_scope", desc: "refresh token missing requested scope", permanent: true}
	e := newEnv(t, record(-time.Minute), failing(bad), nil)
	_, err := e.m.Get(context.Background(), "work")
	var ce *ClientConfigError
	if !errors.As(err, &ce) || ce.Code != "invalid_scope" {
		t.Fatalf("err = %v, want *ClientConfigError", err)
	}
	if want := "account work: the provider refused the scopes asked for: invalid_scope: refresh token missing requested scope"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	if st := e.st.rec("work"); st.NeedsLogin || st.RefreshToken != oldRT {
		t.Errorf("store: %+v", st)
	}
}

// TestStaleClientMarkAsksAgain: a record that an older version marked
// "needs login" after a client error is not a dead grant; one marked after
// a dead grant stays marked.
func TestStaleClientMarkAsksAgain(t *testing.T) {
	for _, tc := range []struct {
		reason string
		stale  bool
	}{
		{"invalid_client: client authentication failed", true},
		{"unauthorized_client", true},
		{"invalid_scope: refresh token missing requested scope", true},
		{"AADSTS7000222: The provided client secret keys are expired.", true},
		{"invalid_grant: Token has been expired or revoked.", false},
		{"consent_required", false},
		{"no refresh token stored", false},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			old := record(-time.Minute)
			old.NeedsLogin, old.Reason = true, tc.reason
			if got := NeedsLogin(old); got == tc.stale {
				t.Errorf("NeedsLogin = %v, want %v", got, !tc.stale)
			}
			e := newEnv(t, old, rotating, nil)
			rec, err := e.m.Get(context.Background(), "work")
			if !tc.stale {
				var nl *NeedsLoginError
				if !errors.As(err, &nl) || e.src.count() != 0 {
					t.Fatalf("err = %v after %d refreshes, want the stored NeedsLoginError", err, e.src.count())
				}
				return
			}
			if err != nil || rec.AccessToken != newAT {
				t.Fatalf("Get: %v", err)
			}
			if st := e.st.rec("work"); st.NeedsLogin || st.Reason != "" || NeedsLogin(st) {
				t.Errorf("the stale mark was not cleared: %+v", st)
			}
		})
	}
}

func TestPermanentRetrieveErrorStored(t *testing.T) {
	e := newEnv(t, record(-time.Minute), failing(&oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: "AADSTS70043: The refresh token has expired"}), nil)
	_, err := e.m.Get(context.Background(), "work")
	var nl *NeedsLoginError
	if !errors.As(err, &nl) || nl.Code != "invalid_grant" || nl.Reason != "AADSTS70043: The refresh token has expired" {
		t.Fatalf("err = %v", err)
	}
	if r := e.st.rec("work"); !r.NeedsLogin || r.RefreshToken != oldRT {
		t.Errorf("store not marked, or refresh token lost")
	}
}

func TestTransientWithValidTokenReturnsCurrent(t *testing.T) {
	old := record(2 * time.Minute) // inside the margin, still valid
	e := newEnv(t, old, failing(errNetwork), nil)
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != oldAT {
		t.Errorf("did not return the current token")
	}
	if n := e.src.count(); n != 1 {
		t.Errorf("Source called %d times, want 1", n)
	}
	if len(e.sl.list()) != 0 {
		t.Errorf("slept although a valid token was at hand")
	}
	if !reflect.DeepEqual(e.st.rec("work"), old) {
		t.Errorf("stored record changed")
	}
	if !strings.Contains(e.logs.String(), "level=WARN") {
		t.Errorf("no warning logged")
	}
}

func TestTransientExpiredRetriesThenFails(t *testing.T) {
	old := record(-time.Minute)
	e := newEnv(t, old, failing(errNetwork), func(o *Options) {
		o.MaxAttempts = 6
		o.BackoffBase = time.Second
		o.BackoffMax = 5 * time.Second
	})
	_, err := e.m.Get(context.Background(), "work")
	var te *TransientError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want *TransientError", err)
	}
	if te.Account != "work" || !errors.Is(err, errNetwork) || te.RetryAfter != 0 {
		t.Errorf("TransientError = %+v", te)
	}
	if n := e.src.count(); n != 6 {
		t.Errorf("Source called %d times, want 6", n)
	}
	caps := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	got := e.sl.list()
	if len(got) != len(caps) {
		t.Fatalf("slept %d times, want %d", len(got), len(caps))
	}
	for i, d := range got {
		if d < 0 || d > caps[i] {
			t.Errorf("sleep %d = %v, want within [0, %v]", i+1, d, caps[i])
		}
	}
	if !reflect.DeepEqual(e.st.rec("work"), old) {
		t.Errorf("stored record (refresh token) changed after transient failures")
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	e := newEnv(t, record(-time.Minute), failing(errNetwork), func(o *Options) {
		o.MaxAttempts = 6
		o.BackoffBase = 100 * time.Millisecond
		o.BackoffMax = time.Second
	})
	var bounds []int64
	e.m.randN = func(n int64) int64 { bounds = append(bounds, n); return n - 1 } // the top of the jitter range
	_, err := e.m.Get(context.Background(), "work")
	if !errors.As(err, new(*TransientError)) {
		t.Fatalf("err = %v", err)
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second}
	if got := e.sl.list(); !reflect.DeepEqual(got, want) {
		t.Errorf("sleeps = %v, want %v", got, want)
	}
	for i, n := range bounds {
		if time.Duration(n-1) != want[i] {
			t.Errorf("jitter range %d is [0, %v), want [0, %v]", i, time.Duration(n), want[i])
		}
	}

	// The bottom of the range is zero: full jitter, not "equal jitter".
	e = newEnv(t, record(-time.Minute), failing(errNetwork), nil)
	e.m.randN = func(int64) int64 { return 0 }
	e.m.Get(context.Background(), "work")
	for _, d := range e.sl.list() {
		if d != 0 {
			t.Errorf("sleep %v, want 0 at the bottom of the jitter range", d)
		}
	}
}

func TestRetryAfterIsAFloor(t *testing.T) {
	busy := &oauthErr{code: "temporarily_unavailable", retryAfter: 7 * time.Second}
	e := newEnv(t, record(-time.Minute), failing(busy), func(o *Options) {
		o.BackoffBase = time.Second
		o.BackoffMax = 30 * time.Second
	})
	_, err := e.m.Get(context.Background(), "work")
	var te *TransientError
	if !errors.As(err, &te) || te.RetryAfter != 7*time.Second {
		t.Fatalf("err = %v, want *TransientError with RetryAfter 7s", err)
	}
	got := e.sl.list()
	if len(got) != DefaultMaxAttempts-1 {
		t.Fatalf("slept %d times, want %d", len(got), DefaultMaxAttempts-1)
	}
	for _, d := range got {
		if d < 7*time.Second {
			t.Errorf("sleep %v shorter than Retry-After 7s", d)
		}
	}
}

func TestRetryAfterBeyondMaxStopsAtOnce(t *testing.T) {
	busy := &oauthErr{code: "slow_down", retryAfter: time.Hour}
	e := newEnv(t, record(-time.Minute), failing(busy), nil)
	_, err := e.m.Get(context.Background(), "work")
	var te *TransientError
	if !errors.As(err, &te) || te.RetryAfter != time.Hour {
		t.Fatalf("err = %v", err)
	}
	if n, s := e.src.count(), len(e.sl.list()); n != 1 || s != 0 {
		t.Errorf("%d calls, %d sleeps; want 1 call, no sleep", n, s)
	}
}

func TestTransientThenSuccess(t *testing.T) {
	e := newEnv(t, record(-time.Minute), func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		if n < 3 {
			return nil, errNetwork
		}
		return rotating(ctx, n, rec)
	}, nil)
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != newAT || e.st.rec("work").RefreshToken != newRT {
		t.Errorf("third attempt's tokens not handed out and stored")
	}
	if len(e.sl.list()) != 2 {
		t.Errorf("slept %d times, want 2", len(e.sl.list()))
	}
}

func TestForceRefresh(t *testing.T) {
	t.Run("already replaced", func(t *testing.T) {
		e := newEnv(t, record(time.Hour), rotating, nil)
		rec, err := e.m.ForceRefresh(context.Background(), "work", "ya29.some-older-token")
		if err != nil {
			t.Fatal(err)
		}
		if rec.AccessToken != oldAT || e.src.count() != 0 {
			t.Errorf("refreshed although the rejected token was already replaced")
		}
	})
	t.Run("replaced by another process while waiting for the lock", func(t *testing.T) {
		e := newEnv(t, record(time.Hour), rotating, nil)
		e.st.onLock = func(string) {
			// Another process refreshes between our read and our lock.
			r := record(time.Hour)
			r.AccessToken = "ya29.from-another-process-5555"
			e.st.put(r)
		}
		rec, err := e.m.ForceRefresh(context.Background(), "work", oldAT)
		if err != nil {
			t.Fatal(err)
		}
		if rec.AccessToken != "ya29.from-another-process-5555" || e.src.count() != 0 {
			t.Errorf("did not use the token the other process stored")
		}
	})
	t.Run("still stored", func(t *testing.T) {
		e := newEnv(t, record(time.Hour), rotating, nil)
		rec, err := e.m.ForceRefresh(context.Background(), "work", oldAT)
		if err != nil {
			t.Fatal(err)
		}
		if rec.AccessToken != newAT || e.src.count() != 1 {
			t.Errorf("rejected token not replaced")
		}
	})
	t.Run("transient never returns the rejected token", func(t *testing.T) {
		e := newEnv(t, record(time.Hour), failing(errNetwork), nil)
		_, err := e.m.ForceRefresh(context.Background(), "work", oldAT)
		if !errors.As(err, new(*TransientError)) {
			t.Fatalf("err = %v, want *TransientError", err)
		}
		if e.src.count() != DefaultMaxAttempts {
			t.Errorf("Source called %d times, want %d", e.src.count(), DefaultMaxAttempts)
		}
	})
}

func TestRefreshDue(t *testing.T) {
	e := newEnv(t, record(20*time.Minute), notRotating, nil)
	if _, err := e.m.RefreshDue(context.Background(), "work", 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	if e.src.count() != 0 {
		t.Errorf("refreshed a token with 20m left for within=10m")
	}
	rec, err := e.m.RefreshDue(context.Background(), "work", 30*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != newAT || e.src.count() != 1 {
		t.Errorf("did not refresh a token with 20m left for within=30m")
	}

	// A background refresher hears about transient failures even while
	// the stored token is valid.
	e = newEnv(t, record(20*time.Minute), failing(errNetwork), nil)
	if _, err := e.m.RefreshDue(context.Background(), "work", 30*time.Minute); !errors.As(err, new(*TransientError)) {
		t.Errorf("err = %v, want *TransientError", err)
	}
}

func TestNoToken(t *testing.T) {
	e := newEnv(t, nil, rotating, nil)
	_, err := e.m.Get(context.Background(), "work")
	var nl *NeedsLoginError
	if !errors.As(err, &nl) || !errors.Is(err, ErrNoToken) {
		t.Fatalf("err = %v, want *NeedsLoginError wrapping ErrNoToken", err)
	}
	if err.Error() != `account work has no token yet` {
		t.Errorf("message %q", err.Error())
	}
	if e.src.count() != 0 {
		t.Errorf("Source called for an account without a record")
	}
}

func TestUnknownSource(t *testing.T) {
	e := newEnv(t, record(-time.Minute), rotating, nil)
	e.st.put(&store.Record{Account: "unknown", AccessToken: oldAT, Expiry: t0.Add(-time.Minute)})
	if _, err := e.m.Get(context.Background(), "unknown"); err == nil || !strings.Contains(err.Error(), "no such account") {
		t.Errorf("err = %v", err)
	}
}

func TestStorePutFailureHandsOutNothing(t *testing.T) {
	e := newEnv(t, record(-time.Minute), rotating, nil)
	e.st.putErr = errors.New("disk full")
	rec, err := e.m.Get(context.Background(), "work")
	if err == nil || rec != nil {
		t.Fatalf("got a token although the rotated refresh token could not be stored")
	}
	if strings.Contains(err.Error(), newAT) || strings.Contains(err.Error(), newRT) {
		t.Errorf("error leaks a token: %v", err)
	}
}

func TestSaveClearsNeedsLogin(t *testing.T) {
	dead := record(-time.Minute)
	dead.NeedsLogin, dead.Reason = true, "invalid_grant: revoked"
	e := newEnv(t, dead, rotating, nil)

	login := &store.Record{Account: "work", AccessToken: newAT, TokenType: "Bearer",
		Expiry: t0.Add(time.Hour), RefreshToken: newRT, NeedsLogin: true, Reason: "stale"}
	if err := e.m.Save(context.Background(), login); err != nil {
		t.Fatal(err)
	}
	if !login.NeedsLogin || !login.Updated.IsZero() {
		t.Errorf("Save modified its argument")
	}
	stored := e.st.rec("work")
	if stored.NeedsLogin || stored.Reason != "" || stored.RefreshToken != newRT {
		t.Errorf("stored after Save: %+v", stored.NeedsLogin)
	}
	if !stored.Created.Equal(dead.Created) || !stored.Updated.Equal(t0) {
		t.Errorf("Created %v Updated %v", stored.Created, stored.Updated)
	}
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil || rec.AccessToken != newAT || e.src.count() != 0 {
		t.Errorf("Get after Save: err %v, calls %d", err, e.src.count())
	}
	if _, _, locks := e.st.counts(); locks != 1 {
		t.Errorf("Save took %d store locks, want 1", locks)
	}

	e = newEnv(t, nil, rotating, nil)
	if err := e.m.Save(context.Background(), &store.Record{Account: "new", AccessToken: newAT}); err != nil {
		t.Fatal(err)
	}
	if r := e.st.rec("new"); !r.Created.Equal(t0) {
		t.Errorf("first Save: Created = %v, want %v", r.Created, t0)
	}
	if err := e.m.Save(context.Background(), &store.Record{}); err == nil {
		t.Errorf("Save accepted a record without an account")
	}
}

func TestCallerCancelDoesNotAbortRefresh(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	e := newEnv(t, record(-time.Minute), func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		entered <- struct{}{}
		<-release
		return rotating(ctx, n, rec)
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Get(ctx, "work")
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(release)
	// A later caller joins or follows the flight and gets its result; the
	// rotated refresh token was stored, not lost with the first caller.
	rec, err := e.m.Get(context.Background(), "work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.AccessToken != newAT || e.st.rec("work").RefreshToken != newRT || e.src.count() != 1 {
		t.Errorf("refresh abandoned with its caller")
	}
}

// TestSecretsNeverLeak runs every path with a Source whose errors quote the
// tokens, and checks error texts, stored reasons and logs.
func TestSecretsNeverLeak(t *testing.T) {
	leakyText := "upstream said: bad token " + oldRT + " / " + oldAT
	cases := []struct {
		name string
		exp  time.Duration
		fn   func(context.Context, int, *store.Record) (*Fresh, error)
	}{
		{"success", -time.Minute, rotating},
		{"transient valid", 2 * time.Minute, failing(errors.New(leakyText))},
		{"transient expired", -time.Minute, failing(errors.New(leakyText))},
		{"permanent", -time.Minute, failing(&oauthErr{code: "invalid_grant", desc: leakyText, permanent: true})},
		{"permanent no code", -time.Minute, failing(&oauthErr{permanent: true, desc: leakyText})},
		{"permanent client, expired", -time.Minute, failing(&oauthErr{code: "invalid_client", desc: leakyText, permanent: true})},
		{"permanent client, valid", 2 * time.Minute, failing(&oauthErr{code: "invalid_client", desc: leakyText, permanent: true})},
		{"permanent scope", -time.Minute, failing(&oauthErr{code: "invalid_scope", desc: leakyText, permanent: true})},
		{"retrieve error", -time.Minute, failing(&oauth2.RetrieveError{ErrorCode: "invalid_grant", ErrorDescription: leakyText})},
		{"empty answer", -time.Minute, func(context.Context, int, *store.Record) (*Fresh, error) {
			return &Fresh{RefreshToken: newRT}, nil
		}},
		{"error with tokens", -time.Minute, func(context.Context, int, *store.Record) (*Fresh, error) {
			return &Fresh{AccessToken: newAT, RefreshToken: newRT}, errors.New("half answer " + newAT + " " + newRT)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, record(tc.exp), tc.fn, nil)
			var texts []string
			for _, call := range []func() (*store.Record, error){
				func() (*store.Record, error) { return e.m.Get(context.Background(), "work") },
				func() (*store.Record, error) { return e.m.ForceRefresh(context.Background(), "work", oldAT) },
				func() (*store.Record, error) { return e.m.RefreshDue(context.Background(), "work", time.Hour) },
			} {
				if _, err := call(); err != nil {
					texts = append(texts, err.Error())
					var nl *NeedsLoginError
					if errors.As(err, &nl) {
						texts = append(texts, nl.Reason)
					}
					var ce *ClientConfigError
					if errors.As(err, &ce) {
						texts = append(texts, ce.Reason)
					}
				}
			}
			texts = append(texts, e.st.rec("work").Reason, e.logs.String())
			for _, s := range texts {
				for _, secret := range []string{oldAT, oldRT, newAT, newRT} {
					if strings.Contains(s, secret) {
						t.Errorf("secret leaked into %q", s)
					}
				}
			}
			// The filter was at work, not merely a quiet path.
			if strings.HasPrefix(tc.name, "permanent") && !strings.Contains(strings.Join(texts, "\n"), "[redacted]") {
				t.Errorf("no redaction marker in %q", texts)
			}
		})
	}
	// Logging in Save does not print tokens either.
	e := newEnv(t, nil, rotating, nil)
	if err := e.m.Save(context.Background(), record(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if logs := e.logs.String(); strings.Contains(logs, oldAT) || strings.Contains(logs, oldRT) || logs == "" {
		t.Errorf("Save logs: %q", logs)
	}
}

// A grant whose token endpoint changed is neither retried nor marked: with
// the earlier configuration back, the stored login works again.
func TestEndpointChangedKeepsGrant(t *testing.T) {
	changed := &EndpointChangedError{Account: "work", Stored: "https://a.example/token", Configured: "https://b.example/token"}
	restored := false
	e := newEnv(t, record(-time.Minute), func(ctx context.Context, n int, rec *store.Record) (*Fresh, error) {
		if restored {
			return notRotating(ctx, n, rec)
		}
		return nil, changed
	}, nil)

	_, err := e.m.Get(context.Background(), "work")
	var ec *EndpointChangedError
	if !errors.As(err, &ec) || ec != changed {
		t.Fatalf("err = %v, want the *EndpointChangedError", err)
	}
	if len(e.sl.list()) != 0 || e.src.count() != 1 {
		t.Errorf("retried: %d calls, sleeps %v", e.src.count(), e.sl.list())
	}
	if stored := e.st.rec("work"); stored.NeedsLogin || stored.Reason != "" {
		t.Errorf("store marked: NeedsLogin %v Reason %q", stored.NeedsLogin, stored.Reason)
	}

	restored = true
	if rec, err := e.m.Get(context.Background(), "work"); err != nil || rec.AccessToken != newAT {
		t.Fatalf("after restoring the configuration: %v", err)
	}
}
