package servetest

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestProxy runs mailkey serve against Dovecot and talks to it with Python's imaplib, poplib
// and smtplib in every TLS mode and login method, with a local app password; mailkey logs in
// upstream with XOAUTH2 over STARTTLS. The client recipes of docs/clients/ through the proxy
// run in TestProxyRecipes.
func TestProxy(t *testing.T) {
	t.Parallel()
	// Tokens live longer than the test (e2e.DefaultAccessTokenTTL), so that no background
	// refresh replaces one while a subtest relies on it; the last subtest shortens them.
	s := e2e.Start(t, e2e.WithOPEnv("OP_DEBUG", "1"))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 3) // a refresh token, access tokens and the app password
	m := &mk{mailkeytest.New(t, leaks, mailkeytest.RefreshMargin("1s"))}
	const acct = "work"
	m.addAccount(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
	pw := m.addPassword(ctx, acct, "clients")
	srv := m.serve(ctx)
	leaksChecked := false
	defer func() {
		if !leaksChecked {
			t.Logf("mailkey serve logs:\n%s", srv.logs())
		}
	}()

	fp := srv.metricFingerprint(t)
	if st := m.Must(ctx, "", "status").Stdout; !strings.Contains(st, "proxy certificate: ") || !strings.Contains(st, fp) {
		t.Errorf("mailkey status does not show the proxy certificate's fingerprint %s:\n%s", fp, st)
	}

	dir := t.TempDir()
	clients := filepath.Join(dir, "clients.py")
	writeFile(t, clients, clientsPy, 0o600)
	hostPort := func(listener string) (string, string) {
		host, port, _ := strings.Cut(srv.addr[listener], ":")
		return host, port
	}
	pyClient := func(t *testing.T, proto, mode, method, user string, extra ...string) string {
		t.Helper()
		listener := proto
		if mode == "ssl" {
			listener += "s"
		}
		host, port := hostPort(listener)
		if mode != "plain" {
			host = "localhost" // the certificate's name
		}
		args := append([]string{proto, mode, method, host, port, user, pw, srv.certFile}, extra...)
		out, err := python(t, ctx, clients, args...)
		if err != nil {
			t.Fatalf("clients.py %s: %v\n%s", strings.Join(args[:5], " "), err, out)
		}
		return out
	}

	t.Run("imaplib", func(t *testing.T) {
		for _, mode := range []string{"plain", "starttls", "ssl"} {
			for _, method := range []string{"login", "plain"} {
				user := acct
				if method == "plain" {
					user = e2e.Alice // the email address works as the login name too
				}
				if out := pyClient(t, "imap", mode, method, user); !strings.HasPrefix(out, "INBOX ") {
					t.Errorf("imap %s %s: %q", mode, method, out)
				}
			}
		}
	})

	t.Run("poplib", func(t *testing.T) {
		for _, mode := range []string{"plain", "starttls", "ssl"} {
			for _, method := range []string{"user", "plain"} {
				if out := pyClient(t, "pop3", mode, method, acct); !strings.HasPrefix(out, "STAT ") {
					t.Errorf("pop3 %s %s: %q", mode, method, out)
				}
			}
		}
	})

	t.Run("smtplib", func(t *testing.T) {
		before, err := s.MessageCount(e2e.Bob, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		sent := 0
		for _, mode := range []string{"plain", "starttls", "ssl"} {
			for _, method := range []string{"plain", "login"} {
				pyClient(t, "smtp", mode, method, acct, e2e.Alice, e2e.Bob)
				sent++
			}
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Bob, "INBOX", before+sent); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("IDLE sees a new message", func(t *testing.T) {
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + acct + " " + pw + "\r\n")
		c.until("a OK")
		c.send("b SELECT INBOX\r\n")
		c.until("b OK")
		c.send("c IDLE\r\n")
		c.until("+")
		tok := m.Token(ctx, acct)
		if err := e2e.SubmissionSend(ctx, e2e.Loopback(s.SubmissionPort), e2e.Plain, nil, e2e.Alice, tok, e2e.XOAUTH2,
			e2e.Alice, e2e.NewMessage(e2e.Bob, e2e.Alice, "while idling", "hello")); err != nil {
			t.Fatal(err)
		}
		l := c.until("* ")
		for !strings.HasSuffix(l, " EXISTS") {
			l = c.until("* ")
		}
		c.send("DONE\r\n")
		c.until("c OK")
		c.send("d LOGOUT\r\n")
		c.until("d OK")
	})

	// Nothing a client sends before proving an app password reaches Dovecot: the proxy's
	// count of upstream connections does not move.
	t.Run("refused without dialling", func(t *testing.T) {
		dials := srv.metric(t, "mailkey_upstream_dials_total")
		injections := srv.metric(t, "mailkey_proxy_starttls_injections_total")

		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + acct + " wrong-password-0000\r\n")
		if l := c.until("a "); !strings.HasPrefix(l, "a NO") {
			t.Errorf("wrong password: %s", l)
		}
		c.send("b LOGIN nobody@example.test " + pw + "\r\n")
		if l := c.until("b "); !strings.HasPrefix(l, "b NO") {
			t.Errorf("unknown user: %s", l)
		}

		for _, tc := range []struct{ listener, greet, cmd string }{
			{"imap", "* OK", "a STARTTLS\r\nb LOGIN " + acct + " " + pw + "\r\n"},
			{"pop3", "+OK", "STLS\r\nUSER " + acct + "\r\n"},
			{"smtp", "220", "EHLO x\r\nSTARTTLS\r\nAUTH PLAIN AGZvbwBiYXI=\r\n"},
		} {
			c := dialRaw(t, srv.addr[tc.listener])
			c.until(tc.greet)
			c.send(tc.cmd) // one packet: the commands after STARTTLS are an injection
			rest, closed := c.closed()
			if !closed || strings.Contains(rest, "OK Begin") {
				t.Errorf("%s: STARTTLS injection not refused: %q", tc.listener, rest)
			}
		}

		c = dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + strings.Repeat("x", 20000) + " y\r\n")
		if rest, closed := c.closed(); !closed || !strings.Contains(rest, "BYE") {
			t.Errorf("oversized line: %q", rest)
		}

		c = dialRaw(t, srv.addr["pop3"])
		c.until("+OK")
		c.send(strings.Repeat("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n", 8))
		if _, closed := c.closed(); !closed {
			t.Error("garbage before login: connection not closed")
		}

		if got := srv.metric(t, "mailkey_upstream_dials_total"); got != dials {
			t.Errorf("refused clients made %v upstream connections", got-dials)
		}
		if got := srv.metric(t, "mailkey_proxy_starttls_injections_total"); got-injections != 3 {
			t.Errorf("%v injections counted, want 3", got-injections)
		}
	})

	t.Run("removed password stops working", func(t *testing.T) {
		temp := m.addPassword(ctx, acct, "temporary")
		login := func() string {
			c := dialRaw(t, srv.addr["imap"])
			c.until("* OK")
			c.send("a LOGIN " + acct + " " + temp + "\r\n")
			return c.until("a ")
		}
		if l := login(); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("new password refused: %s", l)
		}
		if l := login(); !strings.HasPrefix(l, "a OK") { // remembered this time
			t.Fatalf("second login refused: %s", l)
		}
		m.Must(ctx, "", "password", "remove", acct, "temporary")
		if l := login(); !strings.HasPrefix(l, "a NO") {
			t.Fatalf("removed password still accepted: %s", l)
		}
		if l := m.Must(ctx, "", "password", "list", acct).Stdout; strings.Contains(l, "temporary") || !strings.Contains(l, "clients") {
			t.Errorf("password list after remove:\n%s", l)
		}
	})

	// Dovecot refuses the stored token (dropped at the provider): mailkey refreshes it once
	// and the retry logs in.
	t.Run("refused token is refreshed", func(t *testing.T) {
		forced := srv.metric(t, "mailkey_upstream_forced_refreshes_total")
		if err := s.DropToken(m.Token(ctx, acct)); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + acct + " " + pw + "\r\n")
		if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
			t.Fatalf("login with a dropped token: %s", l)
		}
		if got := srv.metric(t, "mailkey_upstream_forced_refreshes_total"); got-forced != 1 {
			t.Errorf("%v forced refreshes, want 1", got-forced)
		}
	})

	// Tokens now live three seconds: the background refresher replaces them before they
	// expire, with no client around, and a login afterwards succeeds.
	t.Run("background refresh", func(t *testing.T) {
		if err := s.SetTTL(3*time.Second, 0); err != nil {
			t.Fatal(err)
		}
		// serve refreshes a refused token at once and has its refresher look at the new one:
		// drop the token serve holds and log in, and the refresher holds a three-second
		// token. What this login gets is left alone: on a slow machine that token may expire
		// before Dovecot sees it (the subtest above proves such a login).
		if err := s.DropToken(m.Token(ctx, acct)); err != nil {
			t.Fatal(err)
		}
		c := dialRaw(t, srv.addr["imap"])
		c.until("* OK")
		c.send("a LOGIN " + acct + " " + pw + "\r\n")
		c.until("a ")
		start := mailkeytest.RefreshGrants(t, s)
		for mailkeytest.RefreshGrants(t, s) < start+3 {
			select {
			case <-ctx.Done():
				t.Fatalf("no background refresh; logs:\n%s", srv.logs())
			case <-time.After(200 * time.Millisecond):
			}
		}
		if got := srv.metric(t, "mailkey_token_refreshes_total", `result="refreshed"`); got < 2 {
			t.Errorf("mailkey_token_refreshes_total{result=refreshed} = %v", got)
		}
		// The login afterwards gets a token that cannot expire under it, however slow the
		// machine: long lifetimes again, and wait until the refresher has stored such a one.
		if err := s.SetTTL(e2e.DefaultAccessTokenTTL, 0); err != nil {
			t.Fatal(err)
		}
		for m.expiresIn(ctx, acct) < time.Minute {
			select {
			case <-ctx.Done():
				t.Fatalf("no long-lived token stored; logs:\n%s", srv.logs())
			case <-time.After(200 * time.Millisecond):
			}
		}
		out := pyClient(t, "imap", "plain", "login", acct)
		if !strings.HasPrefix(out, "INBOX ") {
			t.Errorf("login after background refreshes: %q", out)
		}
		if page := srv.get(t, "/"); !strings.Contains(page, "valid until") || !strings.Contains(page, fp) {
			t.Errorf("status page:\n%s", page)
		}
	})

	if code := srv.stop(); code != 0 {
		t.Errorf("mailkey serve exited %d after SIGTERM", code)
	}
	m.Token(ctx, acct) // the token serve refreshed last joins the secrets looked for
	logs := srv.logs()
	leaks.Output("mailkey serve's logs", logs)
	if !strings.Contains(logs, "account="+acct) || !strings.Contains(logs, "outcome=ok") {
		t.Errorf("session logs lack the account or the outcome")
	}
	leaksChecked = true
}

// metricFingerprint returns the certificate fingerprint serve printed at start.
func (s *serving) metricFingerprint(t *testing.T) string {
	t.Helper()
	for _, l := range strings.Split(s.logs(), "\n") {
		if strings.Contains(l, "proxy certificate") {
			if _, fp, ok := strings.Cut(l, "sha256="); ok {
				fp, _, _ = strings.Cut(fp, " ")
				if len(fp) == 95 {
					return fp
				}
			}
		}
	}
	t.Fatalf("mailkey serve printed no certificate fingerprint:\n%s", s.logs())
	return ""
}
