package clitest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
)

// refreshCount counts the refresh_token grants the provider has answered so far, from the
// lines server.mjs logs with OP_DEBUG=1.
func refreshCount(t *testing.T, s *e2e.Stack) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, "log", "op.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == "grant.success refresh_token" {
			n++
		}
	}
	return n
}

// waitExpiry sleeps until the access token mailkey holds for name has expired, so that the
// next mailkey token must refresh.
func waitExpiry(t *testing.T, ctx context.Context, m *mk, name string) tokenJSON {
	t.Helper()
	tj := m.tokenJSON(ctx, name)
	if tj.Expiry.IsZero() {
		t.Fatal("mailkey token --json shows no expiry")
	}
	select {
	case <-time.After(time.Until(tj.Expiry) + 100*time.Millisecond):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return tj
}

// TestRefresh runs mailkey against three-second access tokens and a provider that rotates the
// refresh token on every use and revokes the grant when an old one comes back.
func TestRefresh(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(3*time.Second), e2e.WithOPEnv("OP_DEBUG", "1"))
	ctx := testContext(t)
	leaks := newLeakCheck(t)
	const acct = "work"
	m := newMailkey(t, leaks, "1s")
	m.addAccount(ctx, s, acct, e2e.ClientPublic)
	importLogin(t, ctx, s, m, acct)

	// Each round waits for the token to expire: mailkey must refresh once, store the
	// rotated refresh token and hand out a new access token that works. Reusing a rotated
	// refresh token would make the provider revoke the grant, and the next round fail.
	t.Run("rotation across expiries", func(t *testing.T) {
		const rounds = 6
		before := refreshCount(t, s)
		for i := range rounds {
			old := waitExpiry(t, ctx, m, acct)
			tok := m.token(ctx, acct)
			if tok == old.AccessToken {
				t.Fatalf("round %d: mailkey token returned the expired token", i)
			}
			imapOK(t, ctx, s, tok)
		}
		if got := refreshCount(t, s) - before; got != rounds {
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
		r := m.run(ctx, "", "token", acct)
		if err := s.FailTokenEndpoint(0); err != nil {
			t.Fatal(err)
		}
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "mailkey: error: ") || !strings.Contains(r.stderr, "mailkey: hint: ") {
			t.Fatalf("token while the provider fails: %s", r)
		}
		t.Logf("mailkey token while the token endpoint fails:\n%s", r.stderr)
		if r.code != 75 {
			t.Errorf("token while the provider fails: exit %d, want 75 (EX_TEMPFAIL)", r.code)
		}
		if st := m.status(ctx, acct); !st.HasRefresh || st.State == "needs_login" {
			t.Errorf("status after the failed refresh: %+v", st)
		}
		imapOK(t, ctx, s, m.token(ctx, acct))
	})

	// A second copy of the store logs out: the grant is revoked at the provider, and the
	// first copy learns it at its next refresh.
	t.Run("grant revoked", func(t *testing.T) {
		other := m.clone()
		other.must(ctx, "", "logout", acct)
		waitExpiry(t, ctx, m, acct)
		r := m.run(ctx, "", "token", acct)
		if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "needs a new login") ||
			!strings.Contains(r.stderr, "mailkey: hint: mailkey login "+acct) {
			t.Fatalf("token after the grant was revoked: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "needs_login" {
			t.Errorf("status after the grant was revoked: %+v", st)
		}
		importLogin(t, ctx, s, m, acct)
		imapOK(t, ctx, s, m.token(ctx, acct))
	})

	// The provider is down. A valid stored token is still handed out: mailkey token needs
	// no provider for it. An expired one cannot be refreshed: mailkey token fails with a
	// temporary error and the refresh token stays in the store. The provider forgets every
	// token when it restarts, so afterwards the kept refresh token is refused and mailkey
	// asks for a login.
	t.Run("provider down", func(t *testing.T) {
		expired := newMailkey(t, leaks, "1s")
		expired.addAccount(ctx, s, acct, e2e.ClientPublic)
		importLogin(t, ctx, s, expired, acct)
		if err := s.SetTTL(time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		waitExpiry(t, ctx, m, acct)
		valid := m.token(ctx, acct) // lives a minute
		if err := s.SetTTL(3*time.Second, 0); err != nil {
			t.Fatal(err)
		}
		waitExpiry(t, ctx, expired, acct)
		if err := s.StopOP(); err != nil {
			t.Fatal(err)
		}
		rValid := m.run(ctx, "", "token", acct)
		rExpired := expired.run(ctx, "", "token", acct)
		st := expired.status(ctx, acct)
		if err := s.StartOP(); err != nil {
			t.Fatal(err)
		}
		if rValid.code != 0 || strings.TrimSpace(rValid.stdout) != valid {
			t.Errorf("token with a valid stored token while the provider is down: %s", rValid)
		}
		t.Logf("mailkey token with an expired token while the provider is down:\n%s", rExpired.stderr)
		if rExpired.code == 0 || rExpired.stdout != "" || !strings.Contains(rExpired.stderr, "mailkey: error: ") ||
			!strings.Contains(rExpired.stderr, "mailkey: hint: ") {
			t.Fatalf("token with an expired token while the provider is down: %s", rExpired)
		}
		if rExpired.code != 75 {
			t.Errorf("token while the provider is down: exit %d, want 75 (EX_TEMPFAIL)", rExpired.code)
		}
		if !st.HasRefresh || st.State != "expired" {
			t.Errorf("status while the provider is down: %+v", st)
		}
		r := expired.run(ctx, "", "token", acct)
		if r.code == 0 || !strings.Contains(r.stderr, "mailkey: hint: mailkey login "+acct) {
			t.Errorf("token after the provider forgot the grant: %s", r)
		}
	})

	// Twenty mail clients ask at once for an expired token: the store's lock lets one
	// process refresh; the others re-read the record and print the same token.
	t.Run("one refresh for 20 processes", func(t *testing.T) {
		const procs = 20
		importLogin(t, ctx, s, m, acct) // the provider restarted above and forgot the grant
		waitExpiry(t, ctx, m, acct)
		// The token being replaced lived 3 s; the new one lives long enough that no process,
		// however slow, finds it too old and refreshes again.
		if err := s.SetTTL(time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		before := refreshCount(t, s)
		results := make([]result, procs)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range procs {
			wg.Go(func() {
				cmd := m.command(ctx, "token", acct)
				var out, errb strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &errb
				<-start
				err := cmd.Run()
				results[i] = result{stdout: out.String(), stderr: errb.String(), code: -1}
				if cmd.ProcessState != nil {
					results[i].code = cmd.ProcessState.ExitCode()
				} else {
					results[i].stderr += err.Error()
				}
			})
		}
		close(start)
		wg.Wait()
		for i, r := range results {
			m.record([]string{"token", acct}, r)
			if r.code != 0 {
				t.Fatalf("process %d: %s", i, r)
			}
			m.leaks.secret("access token", strings.TrimSpace(r.stdout))
			if r.stdout != results[0].stdout {
				t.Errorf("process %d printed another token than process 0", i)
			}
		}
		if got := refreshCount(t, s) - before; got != 1 {
			t.Errorf("%d processes caused %d refreshes at the provider, want 1", procs, got)
		}
		imapOK(t, ctx, s, strings.TrimSpace(results[0].stdout))
	})
}
