package clitest

import (
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestRefreshRefusesAnotherTokenEndpoint: a grant was issued by the stack's token endpoint;
// then the account's token_url names another URL on the stack (as a changed tenant or cloud
// does). mailkey token refuses to refresh there, before any request, names both endpoints and
// the login that fixes it, and marks nothing: with the configuration restored, the stored grant
// refreshes again.
func TestRefreshRefusesAnotherTokenEndpoint(t *testing.T) {
	t.Parallel()
	const acct = "work"
	s, ctx, m := aliceLoggedIn(t, acct)
	issued := m.StoredRecord(ctx, acct).TokenURL
	if issued != s.Issuer+"/token" {
		t.Fatalf("the grant's record names token endpoint %q, want the stack's %q", issued, s.Issuer+"/token")
	}

	// The same handler answers this URL: a refresh sent there would be counted, and
	// would succeed.
	other := s.Issuer + "/token?tenant=fabrikam"
	m.Must(ctx, "", "add", acct, "--token-url", other)
	m.EditRecord(ctx, acct, mailkeytest.Expired)
	tokenStats(t, s, true)
	r := m.Run(ctx, "", "token", acct)
	t.Logf("mailkey token after the token endpoint changed:\n%s", r.Stderr)
	if r.Code != 78 || r.Stdout != "" {
		t.Errorf("mailkey token after the token endpoint changed: %s\nwant exit 78 (EX_CONFIG) and no token", r)
	}
	for _, want := range []string{
		"mailkey: error: account work: the token endpoint changed since the login: the grant was issued by " + issued +
			", the configuration now names " + other,
		"mailkey: hint: to use the new endpoint, log in through it: mailkey login work",
		"restore the tenant, cloud, issuer or token_url account work had at the login",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	// mailkey test explains it too.
	r = m.Run(ctx, "", "test", acct, "--imap")
	t.Logf("mailkey test after the token endpoint changed:\n%s%s", r.Stdout, r.Stderr)
	if out := r.Stdout + r.Stderr; r.Code == 0 || !strings.Contains(out, "mailkey does not send a refresh token to an endpoint that did not issue it") ||
		!strings.Contains(out, "log in through the new endpoint: mailkey login work") {
		t.Errorf("mailkey test after the token endpoint changed: %s", r)
	}
	if st := tokenStats(t, s, false); len(st) != 0 {
		t.Errorf("the token endpoint was asked (%v): the refresh token went to the new endpoint", st)
	}
	if st := m.status(ctx, acct); st.State != "expired" || !st.HasRefresh {
		t.Errorf("status after the refused refresh: %+v, want the grant kept", st)
	}

	// The configuration names the issuing endpoint again: the stored grant refreshes.
	m.Must(ctx, "", "add", acct, "--token-url", issued)
	grantAlive(t, ctx, s, m, acct)
	if st := tokenStats(t, s, false); st["refresh_token.success"] != 1 {
		t.Errorf("token endpoint outcomes %v, want one refresh", st)
	}
}
