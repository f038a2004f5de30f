package clitest

import (
	"context"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// agentPassphrase protects the token store in these tests, as on a headless server without an
// OS keyring.
const agentPassphrase = "agent-e2e-passphrase-7f3a"

// withEnv is m's user with vars added to (or replacing) its environment.
func withEnv(t *testing.T, m *mk, vars ...string) *mk {
	e := *m.On(t)
	e.Vars = append(slices.Clone(m.Vars), vars...)
	return &mk{&e}
}

// agentProcess starts args (mailkey agent, or mailkey serve) and waits until it says it
// answers mailkey token.
func agentProcess(t *testing.T, ctx context.Context, m *mk, args ...string) *running {
	t.Helper()
	p := m.start(ctx, args...)
	p.waitLine(ctx, "that it answers mailkey token", func(l string) bool {
		return strings.Contains(l, "answering mailkey token")
	})
	return p
}

// stopAgent sends SIGTERM and checks that the agent exits cleanly, having lost no refresh.
func stopAgent(t *testing.T, p *running) mailkeytest.Result {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	r := p.wait()
	if r.Code != 0 || strings.Contains(r.Stderr, "was not saved") {
		t.Errorf("mailkey %s after SIGTERM: %s", strings.Join(p.args, " "), r)
	}
	return r
}

// TestAgent runs mailkey token against a mailkey agent in passphrase mode. The helper's own
// environment holds a wrong passphrase, so every token it prints came through the agent:
// opening the store would fail.
func TestAgent(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Hour))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Secret("passphrase", agentPassphrase)
	leaks.Require("access token", 3)
	const acct = "work"
	m := withEnv(t, newMailkey(t, leaks, ""), "MAILKEY_PASSPHRASE="+agentPassphrase)
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
	m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	helper := func(t *testing.T) *mk { return withEnv(t, m, "MAILKEY_PASSPHRASE=not-the-passphrase") }

	// One store handle for the test's edits: each opening runs scrypt.
	st, err := store.OpenFile(m.State, &store.FileOptions{NoKeyring: true, Passphrase: agentPassphrase})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(t *testing.T, change func(*store.Record)) {
		t.Helper()
		unlock, err := st.Lock(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		rec, err := st.Get(ctx, acct)
		if err != nil {
			t.Fatal(err)
		}
		change(rec)
		if err := st.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	hold := func(t *testing.T) { t.Helper(); mailkeytest.HoldAnswers(t, s) }
	release := func(t *testing.T) { t.Helper(); mailkeytest.ReleaseAnswers(t, s) }
	// alive proves, without an agent, that the stored refresh token is the provider's current
	// one: one more refresh succeeds and its token logs in.
	alive := func(t *testing.T) {
		t.Helper()
		edit(t, mailkeytest.Expired)
		tok := m.On(t).Token(ctx, acct, "--wait", "0")
		imapOK(t, ctx, s, tok)
	}

	t.Run("no agent: the wrong passphrase fails", func(t *testing.T) {
		r := helper(t).Run(ctx, "", "token", acct)
		if r.Code == 0 || !strings.Contains(r.Stderr, "MAILKEY_PASSPHRASE") {
			t.Fatalf("mailkey token with a wrong passphrase and no agent: %s", r)
		}
	})

	t.Run("token through the agent", func(t *testing.T) {
		p := agentProcess(t, ctx, m, "agent")
		defer stopAgent(t, p)
		want := m.tokenJSON(ctx, acct).AccessToken // through the agent as well
		h := helper(t)
		if got := h.Token(ctx, acct); got != want {
			t.Fatal("mailkey token through the agent printed another token than the store holds")
		}
		imapOK(t, ctx, s, want)
		if r := h.Must(ctx, "", "token", acct, "--sasl", "xoauth2"); strings.TrimSpace(r.Stdout) == "" {
			t.Fatal("--sasl xoauth2 through the agent printed nothing")
		}
		r := h.Run(ctx, "", "token", "nosuch")
		if r.Code != 1 || !strings.Contains(r.Stderr, `mailkey: error: no account "nosuch"`) || !strings.Contains(r.Stderr, "mailkey: hint: ") {
			t.Errorf("unknown account through the agent: %s", r)
		}
		second := m.Run(ctx, "", "agent")
		if second.Code == 0 || !strings.Contains(second.Stderr, "already answers") || !strings.Contains(second.Stderr, "mailkey: hint: ") {
			t.Errorf("second agent: %s", second)
		}
	})

	// Two hundred mail clients ask at once for an expired token: the agent refreshes once and
	// every caller gets the new token.
	t.Run("200 callers at expiry, one refresh", func(t *testing.T) {
		const callers = 200
		p := agentProcess(t, ctx, m, "agent")
		defer stopAgent(t, p)
		old := m.tokenJSON(ctx, acct).AccessToken
		edit(t, mailkeytest.Expired)
		if _, err := s.TokenStats(true); err != nil {
			t.Fatal(err)
		}
		h := helper(t)
		results := h.RunConcurrent(ctx, callers, "token", acct)
		for i, r := range results {
			h.Leaks.Secret("access token", strings.TrimSpace(r.Stdout))
			if r.Code != 0 {
				t.Fatalf("caller %d: exit %d\n%s", i, r.Code, r.Stderr)
			}
			if r.Stdout != results[0].Stdout {
				t.Errorf("caller %d printed another token than caller 0", i)
			}
		}
		if strings.TrimSpace(results[0].Stdout) == old {
			t.Fatal("the callers got the expired token")
		}
		stats, err := s.TokenStats(false)
		if err != nil {
			t.Fatal(err)
		}
		if n := stats["refresh_token.success"]; n != 1 {
			t.Errorf("%d callers caused %d refreshes at the provider (%v), want 1", callers, n, stats)
		}
		imapOK(t, ctx, s, strings.TrimSpace(results[0].Stdout))
	})

	// A due token is printed at once while the provider holds every answer; the agent
	// refreshes it, and on SIGTERM waits for the answer and stores it.
	t.Run("due token refreshed in the agent, seen through on SIGTERM", func(t *testing.T) {
		p := agentProcess(t, ctx, m, "agent")
		old := m.tokenJSON(ctx, acct).AccessToken
		edit(t, mailkeytest.Due)
		hold(t)
		r := helper(t).Run(ctx, "", "token", acct)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != old {
			release(t)
			t.Fatalf("token due for refresh while the provider stalls: %s", r)
		}
		mailkeytest.WaitRefreshes(t, ctx, s, 1) // the agent's request reached the provider
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.waitLine(ctx, "that it waits for the provider", func(l string) bool {
			return strings.Contains(l, "waiting for the provider to answer the token refresh of "+acct)
		})
		release(t)
		if r := p.wait(); r.Code != 0 || strings.Contains(r.Stderr, "was not saved") {
			t.Fatalf("agent after SIGTERM: %s", r)
		}
		if tj := m.tokenJSON(ctx, acct); tj.AccessToken == old {
			t.Fatal("the agent's refresh was not stored")
		}
		alive(t)
	})

	// An expired token waits for the agent's refresh only up to --wait and exits 75, worded as
	// without an agent; the agent stores the late answer.
	t.Run("expired token and a stalled provider", func(t *testing.T) {
		p := agentProcess(t, ctx, m, "agent")
		defer stopAgent(t, p)
		old := m.tokenJSON(ctx, acct).AccessToken
		edit(t, mailkeytest.Expired)
		hold(t)
		h := helper(t)
		r := h.Run(ctx, "", "token", acct, "--wait", "1s")
		if r.Code != 75 || r.Stdout != "" || !strings.Contains(r.Stderr, "mailkey: error: account work: the provider did not refresh the token within 1s") ||
			!strings.Contains(r.Stderr, "mailkey: hint: the refresh goes on in the mailkey agent") {
			release(t)
			t.Fatalf("token with an expired token while the provider stalls: %s", r)
		}
		mailkeytest.WaitRefreshes(t, ctx, s, 1)
		release(t)
		waitNewToken(t, ctx, h, acct, old)
	})

	t.Run("serve answers as an agent", func(t *testing.T) {
		p := agentProcess(t, ctx, m, "serve", "--imap", "127.0.0.1:0", "--pop3", "off", "--smtp", "off", "--status", "off", "--shutdown-timeout", "5s")
		defer stopAgent(t, p)
		want := m.tokenJSON(ctx, acct).AccessToken
		if got := helper(t).Token(ctx, acct); got != want {
			t.Fatal("mailkey token through serve printed another token than the store holds")
		}
		second := m.Run(ctx, "", "agent")
		if second.Code == 0 || !strings.Contains(second.Stderr, "already answers") {
			t.Errorf("mailkey agent while serve answers: %s", second)
		}
	})

	t.Run("serve --no-agent", func(t *testing.T) {
		p := m.start(ctx, "serve", "--no-agent", "--imap", "127.0.0.1:0", "--pop3", "off", "--smtp", "off", "--status", "off")
		p.waitLine(ctx, "that it listens", func(l string) bool { return strings.Contains(l, "listening") })
		defer stopAgent(t, p)
		if r := helper(t).Run(ctx, "", "token", acct); r.Code == 0 {
			t.Errorf("mailkey token with a wrong passphrase while serve --no-agent runs: %s", r)
		}
	})

	// Not an assertion: what one mailkey token costs with and without the agent, for the
	// record (go test -v shows it). Memory is not measured here: a child of this process
	// inherits its peak RSS across fork and exec.
	t.Run("cost per call", func(t *testing.T) {
		const calls = 5
		measure := func(h *mk) time.Duration {
			var total time.Duration
			for range calls {
				began := time.Now()
				tok := h.Token(ctx, acct)
				total += time.Since(began)
				h.Leaks.Secret("access token", tok)
			}
			return total / calls
		}
		direct := measure(withEnv(t, m, "MAILKEY_NO_AGENT=1"))
		p := agentProcess(t, ctx, m, "agent")
		defer stopAgent(t, p)
		viaAgent := measure(helper(t))
		t.Logf("mailkey token in passphrase mode: %s per call from the store, %s through the agent (%.0fx)",
			direct, viaAgent, float64(direct)/float64(max(viaAgent, 1)))
	})
}
