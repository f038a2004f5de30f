package servetest

import (
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestServeOneRefreshPerToken runs mailkey serve with the default refresh_margin (5m)
// against tokens that live five minutes, Keycloak's default: no longer than the margin,
// where a fixed margin refreshed on nearly every login. The stored token has expired when
// serve starts; 300 logins through the proxy then cost one refresh, shared by the background
// refresher and the logins, and the new token serves them all.
func TestServeOneRefreshPerToken(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithAccessTokenTTL(5*time.Minute))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 2) // the refresh token and the app password at least
	m := &mk{mailkeytest.New(t, leaks, "")}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	m.EditRecord(ctx, acct, mailkeytest.Expired) // at expiry, without waiting for it
	if _, err := s.TokenStats(true); err != nil {
		t.Fatal(err)
	}
	srv := m.serve(ctx)

	const logins = 300
	for i := range logins {
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + acct + " " + pw + "\r\n")
		if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("login %d: %s\nlogs:\n%s", i, l, srv.logs())
		}
		c.send("b LOGOUT\r\n")
		c.until("b ")
		c.c.Close()
	}
	stats, err := s.TokenStats(false)
	if err != nil {
		t.Fatal(err)
	}
	if got := stats["refresh_token.success"]; got != 1 {
		t.Errorf("%d logins through the proxy with 5m tokens caused %d refreshes at the provider, want 1 (stats %v)",
			logins, got, stats)
	}
	if got := srv.metric(t, "mailkey_upstream_logins_total", `result="ok"`); got < logins {
		t.Errorf("mailkey_upstream_logins_total{result=ok} = %v, want %d", got, logins)
	}

	if code := srv.stop(); code != 0 {
		t.Errorf("mailkey serve exited %d after SIGTERM", code)
	}
	m.Token(ctx, acct) // the token serve got joins the secrets looked for
	leaks.Output("mailkey serve's logs", srv.logs())
}
