package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

type oneRecord struct{ rec *store.Record }

func (o oneRecord) Get(context.Context, string) (*store.Record, error) { return o.rec, nil }

// TestTokenStateClientMark: the status page says "needs login" for a dead
// grant only, not for a mark an older version left after a client error.
func TestTokenStateClientMark(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		reason string
		want   string
	}{
		{"invalid_grant: grant request is invalid", "needs login"},
		{"invalid_client: client authentication failed", "valid until"},
	} {
		rec := &store.Record{Account: "work", AccessToken: "at", Expiry: now.Add(time.Hour), NeedsLogin: true, Reason: tc.reason}
		s := &Server{cfg: Config{Store: oneRecord{rec}}, accts: []*config.Account{{Name: "work"}}}
		if got := s.tokenState(s.health(context.Background())[0], now); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: state %q, want %q…", tc.reason, got, tc.want)
		}
	}
}

// TestReadyz: /readyz names each account that needs a person, with what to
// run, and answers 503 until then; an app-only account without a token yet
// is ready (it fetches one on first use).
func TestReadyz(t *testing.T) {
	dead := &store.Record{Account: "work", AccessToken: "at", Expiry: time.Now().Add(time.Hour), NeedsLogin: true, Reason: "invalid_grant: revoked"}
	s := &Server{cfg: Config{Store: oneRecord{dead},
		Command: func(step Step, a string) string { return "mailkey login " + a }}, accts: []*config.Account{{Name: "work"}}, started: time.Now()}
	rr := httptest.NewRecorder()
	s.readyz(rr, httptest.NewRequest("GET", "/readyz", nil))
	if rr.Code != http.StatusServiceUnavailable || rr.Body.String() != "not ready\nwork: needs login (mailkey login work)\n" {
		t.Errorf("readyz with a dead grant: %d %q", rr.Code, rr.Body.String())
	}
	var b strings.Builder
	writeAccountGauges(&b, s.health(context.Background()), time.Now())
	if !strings.Contains(b.String(), `mailkey_account_needs_person{account="work"} 1`) {
		t.Errorf("gauges with a dead grant:\n%s", b.String())
	}

	s.cfg.Store = records{}
	s.started = time.Time{}
	rr = httptest.NewRecorder()
	s.readyz(rr, httptest.NewRequest("GET", "/readyz", nil))
	if rr.Code != http.StatusServiceUnavailable || !strings.Contains(rr.Body.String(), "listeners: not up yet") {
		t.Errorf("readyz before the listeners: %d %q", rr.Code, rr.Body.String())
	}
}

// TestStatusPageWords: the page shows each account's expiry, grant, last
// refresh, the refresher's last failure with its fix, reads on a phone,
// keeps its Content-Security-Policy, and never shows a token.
func TestStatusPageWords(t *testing.T) {
	now := time.Now()
	rec := &store.Record{Account: "work", AccessToken: "secret-access", RefreshToken: "secret-refresh", Expiry: now.Add(40 * time.Minute),
		RefreshExpiry: now.Add(72 * time.Hour), LastRefresh: now.Add(-20 * time.Minute), Updated: now.Add(-20 * time.Minute)}
	r := newRefresher("work", nil, time.Minute, nil, newMetrics())
	r.hint = func(string, error) string { return "wait a moment" }
	r.setResult(errors.New("token endpoint answered 503"))
	s := &Server{cfg: Config{Store: oneRecord{rec}}, accts: []*config.Account{{Name: "work", Email: "me@example.test"}},
		refreshers: map[string]*refresher{"work": r}}
	rr := httptest.NewRecorder()
	s.statusHandler().ServeHTTP(rr, httptest.NewRequest("GET", "http://127.0.0.1:8025/", nil))
	page := rr.Body.String()
	for _, want := range []string{`<meta name="viewport"`, "valid until", "(in 40 minutes)", "(in 3 days)", "(20 minutes ago)",
		"token endpoint answered 503", "wait a moment", "me@example.test"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if csp := rr.Header().Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	if strings.Contains(page, "secret-") {
		t.Error("a token appears on the page")
	}

	// A refresh written since the failure hides it.
	rec.Updated = now.Add(time.Minute)
	rr = httptest.NewRecorder()
	s.statusHandler().ServeHTTP(rr, httptest.NewRequest("GET", "http://127.0.0.1:8025/", nil))
	if strings.Contains(rr.Body.String(), "answered 503") {
		t.Error("a failure older than the record is still shown")
	}
}
