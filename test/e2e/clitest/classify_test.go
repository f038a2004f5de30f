package clitest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// waitStat polls the provider's token-endpoint counts until key reaches want; the bound is
// the test's context, only so that a bug cannot hang the test.
func waitStat(t *testing.T, ctx context.Context, s *e2e.Stack, key string, want int) map[string]int {
	t.Helper()
	for {
		st, err := s.TokenStats(false)
		if err != nil {
			t.Fatal(err)
		}
		if st[key] >= want {
			return st
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			t.Fatalf("the provider counted %d %s, want %d (all: %v)", st[key], key, want, st)
		}
	}
}

// tokenStats returns the provider's token-endpoint counts since the last reset.
func tokenStats(t *testing.T, s *e2e.Stack, reset bool) map[string]int {
	t.Helper()
	st, err := s.TokenStats(reset)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRefreshClientRejected: the token endpoint rejects the client once (401 invalid_client,
// as for a wrong or expired client secret). That is the app's configuration, not the user's
// grant: a valid token is still handed out, an expired one fails with a hint about the client
// secret and EX_CONFIG, nothing is marked in the store, and once the provider accepts the
// client again the next refresh works without a login.
func TestRefreshClientRejected(t *testing.T) {
	t.Parallel()
	const acct = "work"
	s, ctx, m := aliceLoggedIn(t, acct)
	reject := func(t *testing.T) {
		t.Helper()
		if err := s.FailTokenEndpointWith(1, 401, "invalid_client"); err != nil {
			t.Fatal(err)
		}
	}

	// The stored token is valid but due for an early refresh, which the provider refuses.
	t.Run("valid token", func(t *testing.T) {
		old := m.tokenJSON(ctx, acct).AccessToken
		m.EditRecord(ctx, acct, mailkeytest.Due)
		tokenStats(t, s, true)
		reject(t)
		r := m.Run(ctx, "", "token", acct)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != old {
			t.Fatalf("mailkey token while the client is rejected did not hand out the valid token: %s", r)
		}
		waitStat(t, ctx, s, "injected.invalid_client", 1) // the refresh was asked for, and refused
		if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh {
			t.Errorf("status after the rejected refresh: %+v", st)
		}
		// The provider accepts the client again: a refresh succeeds with the kept grant.
		waitNewToken(t, ctx, m, acct, old)
		if st := tokenStats(t, s, false); st["injected.invalid_client"] != 1 || st["refresh_token.success"] < 1 {
			t.Errorf("token endpoint outcomes %v, want one injected invalid_client, then a refresh", st)
		}
		grantAlive(t, ctx, s, m, acct)
	})

	// The stored token has expired: mailkey token fails, says what to fix, exits 78, and
	// works on the next call once the provider accepts the client.
	t.Run("expired token", func(t *testing.T) {
		m.EditRecord(ctx, acct, mailkeytest.Expired)
		tokenStats(t, s, true)
		reject(t)
		r := m.Run(ctx, "", "token", acct)
		t.Logf("mailkey token while the client is rejected:\n%s", r.Stderr)
		if r.Code != 78 || r.Stdout != "" {
			t.Errorf("mailkey token while the client is rejected: %s\nwant exit 78 (EX_CONFIG) and no token", r)
		}
		for _, want := range []string{
			"mailkey: error: account work: the provider rejected the app's client credentials: invalid_client",
			"mailkey: hint: check client_secret (or client_secret_cmd) or the certificate of account work",
			"console", "mailkey token work",
		} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
		if strings.Contains(r.Stderr, "mailkey login") || strings.Contains(r.Stderr, "needs a new login") {
			t.Errorf("a rejected client asks for a login:\n%s", r.Stderr)
		}
		if st := m.status(ctx, acct); st.State != "expired" || !st.HasRefresh {
			t.Errorf("status after the rejected refresh: %+v", st)
		}

		// mailkey test names the cause and the fix.
		reject(t)
		r = m.Run(ctx, "", "test", acct, "--imap")
		t.Logf("mailkey test while the client is rejected:\n%s%s", r.Stdout, r.Stderr)
		if r.Code == 0 || !strings.Contains(r.Stderr, "IMAP failed at token: the account's OAuth client is misconfigured") ||
			!strings.Contains(r.Stderr, "mailkey: hint: check client_secret (or client_secret_cmd)") || strings.Contains(r.Stderr, "mailkey login") {
			t.Errorf("mailkey test while the client is rejected: %s", r)
		}

		// The provider accepts the client again: the next call refreshes.
		grantAlive(t, ctx, s, m, acct)
		if st := tokenStats(t, s, false); st["injected.invalid_client"] != 2 || st["refresh_token.success"] != 1 {
			t.Errorf("token endpoint outcomes %v, want two injected invalid_client and one refresh", st)
		}
	})
}

// TestRefreshUngrantedScope: the account asks for offline_access, which the provider leaves
// out of the grant without prompt=consent. A refresh asks only for what was granted, so the
// account keeps refreshing; asking for offline_access got invalid_scope and a dead account.
func TestRefreshUngrantedScope(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"
	m := newMailkey(t, leaks, "")
	scopes := append(slices.Clone(e2e.DefaultScopes), "offline_access")
	var flags []string
	for _, sc := range scopes {
		flags = append(flags, "--scope", sc)
	}
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice, flags...)

	// An imported refresh token: what it was granted is unknown, so the first refresh asks
	// for every configured scope, is refused, and asks again without a scope parameter.
	tokenStats(t, s, true)
	m.Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword, scopes...)
	if st := tokenStats(t, s, true); st["refresh_token.error.invalid_scope"] != 1 || st["refresh_token.success"] != 1 {
		t.Errorf("the import's refresh: token endpoint outcomes %v, want one invalid_scope, then one success", st)
	}
	st := m.status(ctx, acct)
	if slices.Contains(st.Scopes, "offline_access") || !slices.Contains(st.Scopes, e2e.ScopeMail) {
		t.Fatalf("granted scopes %q: the test needs a grant with mail and without offline_access", st.Scopes)
	}

	// Ten expiries, each followed by a real refresh of the kept grant.
	const rounds = 10
	tok := m.Token(ctx, acct)
	for i := range rounds {
		m.EditRecord(ctx, acct, mailkeytest.Expired)
		next := m.Token(ctx, acct)
		if next == tok {
			t.Fatalf("round %d: mailkey token handed out the expired token", i)
		}
		tok = next
	}
	imapOK(t, ctx, s, tok)
	// And one refresh forced by a mail server: the provider no longer knows the token,
	// mailkey test sees the IMAP server refuse it, refreshes, and logs in with the new one.
	if err := s.DropToken(tok); err != nil {
		t.Fatal(err)
	}
	m.Must(ctx, "", "test", acct, "--imap")
	if m.Token(ctx, acct) == tok {
		t.Error("the dropped token is still handed out")
	}

	stats := tokenStats(t, s, false)
	if got := stats["refresh_token.success"]; got != rounds+1 {
		t.Errorf("the provider answered %d refreshes, want %d (outcomes %v)", got, rounds+1, stats)
	}
	for k, n := range stats {
		if strings.Contains(k, ".error.") {
			t.Errorf("the provider answered %d × %s", n, k)
		}
	}
	if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh || slices.Contains(st.Scopes, "offline_access") {
		t.Errorf("status after the refreshes: %+v", st)
	}
}
