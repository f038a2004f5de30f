package clitest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// tokenProcs runs n mailkey token processes for name at once and returns their results,
// each recorded for the leak check.
func tokenProcs(t *testing.T, ctx context.Context, m *mk, name string, n int) []mailkeytest.Result {
	t.Helper()
	// An expired token waits for its refresh however long that takes.
	return m.RunConcurrent(ctx, n, "token", name, "--wait", "0")
}

// TestAdaptiveMargin runs mailkey with the default refresh_margin (5m) against tokens that
// live one minute and five minutes (Keycloak's default): at or under the margin, where a
// fixed margin made every call refresh. 200 mail clients asking at once for an expired token
// make one refresh: the refreshers queued on the account's lock re-read the record and find
// the new token, judged by its own lifetime, fresh.
func TestAdaptiveMargin(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(time.Minute))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("access token", 2)
	const acct = "work"
	m := newMailkey(t, leaks, "") // the default margin
	m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)

	for _, ttl := range []time.Duration{time.Minute, 5 * time.Minute} {
		t.Run(ttl.String(), func(t *testing.T) {
			const procs = 200
			if err := s.SetTTL(ttl, 0); err != nil {
				t.Fatal(err)
			}
			m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
			// At expiry, without waiting for it.
			m.On(t).EditRecord(ctx, acct, mailkeytest.Expired)
			// The refresh issues a token that outlives the test: a process that a busy
			// machine starts late must find it fresh, not past half of a short life (when
			// refreshing again would be right).
			if err := s.SetTTL(time.Hour, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := s.TokenStats(true); err != nil {
				t.Fatal(err)
			}
			results := tokenProcs(t, ctx, &mk{m.On(t)}, acct, procs)
			stats, err := s.TokenStats(false)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range results {
				if r.Code != 0 {
					t.Fatalf("process %d: exit %d\n%s", i, r.Code, r.Stderr)
				}
				if r.Stdout != results[0].Stdout {
					t.Errorf("process %d printed another token than process 0", i)
				}
			}
			if got := stats["refresh_token.success"]; got != 1 {
				t.Errorf("%d processes with %v tokens at expiry caused %d refreshes at the provider, want 1 (stats %v)",
					procs, ttl, got, stats)
			}
			imapOK(t, ctx, s, strings.TrimSpace(results[0].Stdout))
		})
	}
}
