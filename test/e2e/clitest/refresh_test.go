package clitest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// waitExpiry sleeps until the access token stored for name has expired, so that the next
// mailkey token must refresh, and returns it. It reads the store itself: mailkey token would
// start a background refresh for a token due soon, and race the test.
func waitExpiry(t *testing.T, ctx context.Context, m *mk, name string) tokenJSON {
	t.Helper()
	rec := m.StoredRecord(ctx, name)
	if rec.Expiry.IsZero() {
		t.Fatal("the stored token has no expiry")
	}
	select {
	case <-time.After(time.Until(rec.Expiry) + 100*time.Millisecond):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return tokenJSON{AccessToken: rec.AccessToken, Expiry: rec.Expiry}
}

// TestRefresh runs mailkey against three-second access tokens and a provider that rotates the
// refresh token on every use and revokes the grant when an old one comes back.
func TestRefresh(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(3*time.Second), e2e.WithOPEnv("OP_DEBUG", "1"))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"
	m := newMailkey(t, leaks, "1s")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	// Each round waits for the token to expire: mailkey must refresh once, store the
	// rotated refresh token and hand out a new access token that works. Reusing a rotated
	// refresh token would make the provider revoke the grant, and the next round fail.
	t.Run("rotation across expiries", func(t *testing.T) {
		const rounds = 6
		before := mailkeytest.RefreshGrants(t, s)
		for i := range rounds {
			old := waitExpiry(t, ctx, m, acct)
			tok := m.Token(ctx, acct)
			if tok == old.AccessToken {
				t.Fatalf("round %d: mailkey token returned the expired token", i)
			}
			imapOK(t, ctx, s, tok)
		}
		if got := mailkeytest.RefreshGrants(t, s) - before; got != rounds {
			t.Errorf("the provider answered %d refreshes in %d rounds, want one per round", got, rounds)
		}
		if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh {
			t.Errorf("status after the rounds: %+v", st)
		}
	})

	// The token endpoint answers 500: mailkey token fails with a temporary error and keeps
	// the refresh token, and works again once the provider does.
	t.Run("token endpoint failing", func(t *testing.T) {
		waitExpiry(t, ctx, m, acct)
		if err := s.FailTokenEndpoint(1000); err != nil {
			t.Fatal(err)
		}
		r := m.Run(ctx, "", "token", acct)
		if err := s.FailTokenEndpoint(0); err != nil {
			t.Fatal(err)
		}
		if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "mailkey: error: ") || !strings.Contains(r.Stderr, "mailkey: hint: ") {
			t.Fatalf("token while the provider fails: %s", r)
		}
		t.Logf("mailkey token while the token endpoint fails:\n%s", r.Stderr)
		if r.Code != 75 {
			t.Errorf("token while the provider fails: exit %d, want 75 (EX_TEMPFAIL)", r.Code)
		}
		if st := m.status(ctx, acct); !st.HasRefresh || st.State == "needs_login" {
			t.Errorf("status after the failed refresh: %+v", st)
		}
		imapOK(t, ctx, s, m.Token(ctx, acct))
	})

	// A second copy of the store logs out: the grant is revoked at the provider, and the
	// first copy learns it at its next refresh.
	t.Run("grant revoked", func(t *testing.T) {
		other := m.clone()
		other.Must(ctx, "", "logout", acct)
		waitExpiry(t, ctx, m, acct)
		r := m.Run(ctx, "", "token", acct)
		if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "needs a new login") ||
			!strings.Contains(r.Stderr, "mailkey: hint: mailkey login "+acct) {
			t.Fatalf("token after the grant was revoked: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "needs_login" {
			t.Errorf("status after the grant was revoked: %+v", st)
		}
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		imapOK(t, ctx, s, m.Token(ctx, acct))
	})

	// The provider is down. A valid stored token is still handed out: mailkey token needs
	// no provider for it. An expired one cannot be refreshed: mailkey token fails with a
	// temporary error and the refresh token stays in the store. The provider forgets every
	// token when it restarts, so afterwards the kept refresh token is refused and mailkey
	// asks for a login.
	t.Run("provider down", func(t *testing.T) {
		expired := newMailkey(t, leaks, "1s")
		expired.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		expired.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		if err := s.SetTTL(time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		waitExpiry(t, ctx, m, acct)
		valid := m.Token(ctx, acct) // lives a minute
		if err := s.SetTTL(3*time.Second, 0); err != nil {
			t.Fatal(err)
		}
		waitExpiry(t, ctx, expired, acct)
		if err := s.StopOP(); err != nil {
			t.Fatal(err)
		}
		rValid := m.Run(ctx, "", "token", acct)
		rExpired := expired.Run(ctx, "", "token", acct)
		st := expired.status(ctx, acct)
		if err := s.StartOP(); err != nil {
			t.Fatal(err)
		}
		if rValid.Code != 0 || strings.TrimSpace(rValid.Stdout) != valid {
			t.Errorf("token with a valid stored token while the provider is down: %s", rValid)
		}
		t.Logf("mailkey token with an expired token while the provider is down:\n%s", rExpired.Stderr)
		if rExpired.Code == 0 || rExpired.Stdout != "" || !strings.Contains(rExpired.Stderr, "mailkey: error: ") ||
			!strings.Contains(rExpired.Stderr, "mailkey: hint: ") {
			t.Fatalf("token with an expired token while the provider is down: %s", rExpired)
		}
		if rExpired.Code != 75 {
			t.Errorf("token while the provider is down: exit %d, want 75 (EX_TEMPFAIL)", rExpired.Code)
		}
		if !st.HasRefresh || st.State != "expired" {
			t.Errorf("status while the provider is down: %+v", st)
		}
		r := expired.Run(ctx, "", "token", acct)
		if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey: hint: mailkey login "+acct) {
			t.Errorf("token after the provider forgot the grant: %s", r)
		}
	})

	// Twenty mail clients ask at once for an expired token: the store's lock lets one
	// process refresh; the others re-read the record and print the same token.
	t.Run("one refresh for 20 processes", func(t *testing.T) {
		const procs = 20
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword) // the provider restarted above and forgot the grant
		waitExpiry(t, ctx, m, acct)
		// The token being replaced lived 3 s; the new one lives long enough that no process,
		// however slow, finds it too old and refreshes again.
		if err := s.SetTTL(time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		before := mailkeytest.RefreshGrants(t, s)
		results := m.RunConcurrent(ctx, procs, "token", acct)
		for i, r := range results {
			if r.Code != 0 {
				t.Fatalf("process %d: exit %d\n%s", i, r.Code, r.Stderr)
			}
			m.Leaks.Secret("access token", strings.TrimSpace(r.Stdout))
			if r.Stdout != results[0].Stdout {
				t.Errorf("process %d printed another token than process 0", i)
			}
		}
		if got := mailkeytest.RefreshGrants(t, s) - before; got != 1 {
			t.Errorf("%d processes caused %d refreshes at the provider, want 1", procs, got)
		}
		imapOK(t, ctx, s, strings.TrimSpace(results[0].Stdout))
	})
}
