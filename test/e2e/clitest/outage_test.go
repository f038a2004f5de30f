package clitest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// discoveryCache is where mailkey keeps the provider's discovery documents in a state folder.
func discoveryCache(m *mk) string { return filepath.Join(m.State, "discovery") }

// storedExpiry returns when the stored access token of name expires, from mailkey status,
// which never refreshes.
func storedExpiry(ctx context.Context, m *mk, name string) time.Time {
	m.T.Helper()
	r := m.Must(ctx, "", "status", name, "--json")
	var st struct {
		Accounts []struct {
			Expiry time.Time `json:"expiry"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || len(st.Accounts) != 1 || st.Accounts[0].Expiry.IsZero() {
		m.T.Fatalf("mailkey status %s --json shows no expiry (%v)\n%s", name, err, r.Stdout)
	}
	return st.Accounts[0].Expiry
}

// TestProviderOutage runs mailkey token for accounts known by their issuer only (discovery)
// while the provider is down: a valid stored token is handed out, whether or not the
// discovery document is cached; an expired one fails with a temporary error that says the
// refresh failed; once the provider is back, a refresh works.
func TestProviderOutage(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Minute
	s := e2e.Start(t, e2e.WithAccessTokenTTL(ttl))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("access token", 2)
	const acct = "work"

	// A margin longer than the tokens' lifetime: every mailkey token wants a refresh, while
	// the stored token stays valid for the whole test.
	due := newMailkey(t, leaks, "50m")
	due.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	due.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	// The login looked the provider up and cached its discovery document, one private file.
	if files, err := filepath.Glob(filepath.Join(discoveryCache(due), "*.json")); err != nil || len(files) != 1 {
		t.Errorf("discovery cache after login holds %q (%v), want one file", files, err)
	} else {
		for path, want := range map[string]os.FileMode{discoveryCache(due): 0o700, files[0]: 0o600} {
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v (%v), want %#o", path, fi.Mode().Perm(), err, want)
			}
		}
		if b, err := os.ReadFile(files[0]); err != nil || !strings.Contains(string(b), `"issuer": "`+s.Issuer+`"`) {
			t.Errorf("discovery cache file does not name the issuer %s (%v)", s.Issuer, err)
		}
	}

	valid := due.Token(ctx, acct) // refreshed now: the provider is up
	noCache := due.clone()
	if err := os.RemoveAll(discoveryCache(noCache)); err != nil {
		t.Fatal(err)
	}

	// A token that expires: the provider issues it with a two-second lifetime.
	expired := newMailkey(t, leaks, "1s")
	expired.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	if err := s.SetTTL(2*time.Second, 0); err != nil {
		t.Fatal(err)
	}
	expired.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	if err := s.SetTTL(ttl, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(time.Until(storedExpiry(ctx, expired, acct)) + 100*time.Millisecond):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	expiredNoCache := expired.clone()
	if err := os.RemoveAll(discoveryCache(expiredNoCache)); err != nil {
		t.Fatal(err)
	}

	// Both valid tokens are made due for an early refresh.
	due.EditRecord(ctx, acct, mailkeytest.Due)
	noCache.EditRecord(ctx, acct, mailkeytest.Due)

	if err := s.StopOP(); err != nil {
		t.Fatal(err)
	}
	rDue := due.Run(ctx, "", "token", acct)
	rNoCache := noCache.Run(ctx, "", "token", acct)
	// mailkey token leaves the early refresh to a detached refresher; run it here to see it
	// fail and keep the current token.
	bgDue := due.Run(ctx, "", "background-refresh", acct)
	bgNoCache := noCache.Run(ctx, "", "background-refresh", acct)
	rExpired := expired.Run(ctx, "", "token", acct)
	rExpiredNoCache := expiredNoCache.Run(ctx, "", "token", acct)
	stDown := due.status(ctx, acct)
	if err := s.StartOP(); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name  string
		r, bg mailkeytest.Result
	}{{"discovery document cached", rDue, bgDue}, {"nothing cached", rNoCache, bgNoCache}} {
		if c.r.Code != 0 || strings.TrimSpace(c.r.Stdout) != valid {
			t.Errorf("token with a valid stored token while the provider is down (%s): %s", c.name, c.r)
		}
		if c.bg.Code != 0 || !strings.Contains(c.bg.Stdout, `"ok":true`) || !strings.Contains(c.bg.Stderr, "using the current token while it lasts") {
			t.Errorf("%s: the refresh did not keep the current token while the provider is down: %s", c.name, c.bg)
		}
	}
	if stDown.State != "valid" || !stDown.HasRefresh {
		t.Errorf("status while the provider is down: %+v", stDown)
	}

	t.Logf("mailkey token with an expired token while the provider is down:\n%s", rExpired.Stderr)
	for _, c := range []struct {
		name      string
		r         mailkeytest.Result
		discovery bool // the error names discovery, which failed under the refresh
	}{{"discovery document cached", rExpired, false}, {"nothing cached", rExpiredNoCache, true}} {
		if c.r.Code != 75 || c.r.Stdout != "" {
			t.Errorf("token with an expired token while the provider is down (%s): %s; want exit 75 (EX_TEMPFAIL)", c.name, c.r)
		}
		if !strings.Contains(c.r.Stderr, "mailkey: error: account "+acct+": token refresh failed: ") ||
			!strings.Contains(c.r.Stderr, "mailkey: hint: the provider could not be reached") ||
			strings.Contains(c.r.Stderr, "discovery") != c.discovery {
			t.Errorf("%s: the error does not say that the refresh failed and why:\n%s", c.name, c.r.Stderr)
		}
	}
	if st := expired.status(ctx, acct); st.State != "expired" || !st.HasRefresh {
		t.Errorf("status after the failed refresh: %+v", st)
	}

	// The provider is back but forgot every grant it issued: log in again, then the next
	// mailkey token refreshes (the margin asks for it) with the cached endpoints.
	due.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	if _, err := s.TokenStats(true); err != nil {
		t.Fatal(err)
	}
	due.EditRecord(ctx, acct, mailkeytest.Expired)
	tok := due.Token(ctx, acct, "--wait", "0")
	stats, err := s.TokenStats(false)
	if err != nil {
		t.Fatal(err)
	}
	if stats["refresh_token.success"] != 1 {
		t.Errorf("token endpoint outcomes after the provider came back: %v, want one successful refresh", stats)
	}
	imapOK(t, ctx, s, tok)
}
