package clitest

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// waitNewToken waits until mailkey hands out an access token other than old: a refresh
// running elsewhere has stored its answer.
func waitNewToken(t *testing.T, ctx context.Context, m *mk, name, old string) string {
	t.Helper()
	for {
		if tj := m.tokenJSON(ctx, name); tj.AccessToken != old {
			return tj.AccessToken
		}
		select {
		case <-ctx.Done():
			t.Fatal("the refreshed token was never stored")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// grantAlive proves the stored refresh token is the provider's current one: one more refresh
// succeeds (a spent one would make the provider revoke the grant) and its token logs in.
func grantAlive(t *testing.T, ctx context.Context, s *e2e.Stack, m *mk, name string) {
	t.Helper()
	m.EditRecord(ctx, name, mailkeytest.Expired)
	r := m.Run(ctx, "", "token", name, "--wait", "0")
	if r.Code != 0 {
		t.Fatalf("refresh after the test: %s", r)
	}
	tok := strings.TrimSpace(r.Stdout)
	m.Leaks.Secret("access token", tok)
	imapOK(t, ctx, s, tok)
	if st := m.status(ctx, name); st.State != "valid" || !st.HasRefresh {
		t.Fatalf("status: %+v", st)
	}
}

// TestLifecycle attacks the refresh lifecycle where grants used to be lost: a provider that
// rotates the refresh token and then stalls its answer, callers that give up, signals. The
// provider holds its answers until the test releases them, so nothing here depends on timing.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	const acct = "work"
	m := newMailkey(t, leaks, "")
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)

	hold := func(t *testing.T) { t.Helper(); mailkeytest.HoldAnswers(t, s) }
	release := func(t *testing.T) { t.Helper(); mailkeytest.ReleaseAnswers(t, s) }

	// A valid token due for an early refresh is printed at once, although the provider holds
	// every answer: the refresh runs in a detached process, which stores the rotated token
	// once the answer comes.
	t.Run("due token never waits", func(t *testing.T) {
		old := m.tokenJSON(ctx, acct).AccessToken
		m.EditRecord(ctx, acct, mailkeytest.Due)
		hold(t)
		r := m.Run(ctx, "", "token", acct)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != old {
			release(t)
			t.Fatalf("token due for refresh while the provider stalls: %s", r)
		}
		mailkeytest.WaitRefreshes(t, ctx, s, 1) // the detached refresher's request reached the provider
		release(t)
		waitNewToken(t, ctx, m, acct, old)
		grantAlive(t, ctx, s, m, acct)
	})

	// An expired token waits for the refresh only up to --wait and exits 75; the detached
	// refresher sees the request through, and the answer that comes after the caller gave up
	// is stored.
	t.Run("expired token and a stalled provider", func(t *testing.T) {
		old := m.tokenJSON(ctx, acct).AccessToken
		m.EditRecord(ctx, acct, mailkeytest.Expired)
		hold(t)
		r := m.Run(ctx, "", "token", acct, "--wait", "1s")
		if r.Code != 75 || r.Stdout != "" || !strings.Contains(r.Stderr, "did not refresh the token within 1s") ||
			!strings.Contains(r.Stderr, "mailkey: hint: the refresh goes on in the background") {
			release(t)
			t.Fatalf("token with an expired token while the provider stalls: %s", r)
		}
		mailkeytest.WaitRefreshes(t, ctx, s, 1)
		release(t)
		waitNewToken(t, ctx, m, acct, old)
		grantAlive(t, ctx, s, m, acct)
	})

	// A signal to mailkey token (and to its whole process group, as a terminal's Ctrl-C or a
	// mail client's timeout sends it) while the provider holds the answer: the detached
	// refresher is not in that group and stores the rotated token.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run("mailkey token gets "+sig.String(), func(t *testing.T) {
			old := m.tokenJSON(ctx, acct).AccessToken
			m.EditRecord(ctx, acct, mailkeytest.Expired)
			hold(t)
			p := m.start(ctx, "token", acct, "--wait", "0")
			mailkeytest.WaitRefreshes(t, ctx, s, 1)
			if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil {
				t.Fatal(err)
			}
			if r := p.wait(); r.Code == 0 || r.Stdout != "" {
				t.Errorf("mailkey token after %s: %s", sig, r)
			}
			release(t)
			waitNewToken(t, ctx, m, acct, old)
			grantAlive(t, ctx, s, m, acct)
		})
	}

	// mailkey test refreshes in its own process. A signal while its request is out makes it
	// say what it waits for, and it exits only once the rotated token is stored.
	t.Run("in-process refresh gets SIGTERM", func(t *testing.T) {
		old := m.tokenJSON(ctx, acct).AccessToken
		m.EditRecord(ctx, acct, mailkeytest.Expired)
		hold(t)
		p := m.start(ctx, "test", acct, "--imap")
		mailkeytest.WaitRefreshes(t, ctx, s, 1)
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLine(ctx, "that it waits for the provider", func(l string) bool {
			return strings.Contains(l, "waiting for the provider to answer the token refresh of "+acct)
		})
		release(t)
		r := p.wait()
		if strings.Contains(r.Stderr, "was not saved") {
			t.Errorf("mailkey test lost the refresh: %s", r)
		}
		waitNewToken(t, ctx, m, acct, old)
		grantAlive(t, ctx, s, m, acct)
	})

	// mailkey login --import refreshes the imported token, which rotates it: a signal while
	// that request is out must not lose the new one.
	t.Run("login --import gets SIGINT", func(t *testing.T) {
		tok, err := s.AuthCodeToken(ctx, e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		m.Leaks.Secret("refresh token", tok.RefreshToken)
		m.Leaks.Secret("access token", tok.AccessToken)
		hold(t)
		p := m.start(ctx, "login", acct, "--import")
		if _, err := p.stdin.Write([]byte(tok.RefreshToken + "\n")); err != nil {
			t.Fatal(err)
		}
		mailkeytest.WaitRefreshes(t, ctx, s, 1)
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		p.waitLine(ctx, "that it waits for the provider", func(l string) bool {
			return strings.Contains(l, "waiting for the provider to answer the token refresh of "+acct)
		})
		release(t)
		if r := p.wait(); r.Code != 0 || !strings.Contains(r.Stderr, "logged in: account "+acct) {
			t.Fatalf("login --import interrupted mid-refresh: %s", r)
		}
		grantAlive(t, ctx, s, m, acct)
	})

	// A second signal forces the exit, and mailkey says what that risks.
	t.Run("second signal forces the exit", func(t *testing.T) {
		m.EditRecord(ctx, acct, mailkeytest.Expired)
		hold(t)
		p := m.start(ctx, "test", acct, "--imap")
		mailkeytest.WaitRefreshes(t, ctx, s, 1)
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLine(ctx, "that it waits for the provider", func(l string) bool {
			return strings.Contains(l, "waiting for the provider to answer")
		})
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r := p.wait()
		release(t)
		if r.Code != 128+int(syscall.SIGTERM) || !strings.Contains(r.Stderr, "the token refresh of "+acct+" was not saved") {
			t.Errorf("forced exit: %s", r)
		}
		// The grant is lost as warned: the rotated refresh token never reached the store.
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		grantAlive(t, ctx, s, m, acct)
	})
}
