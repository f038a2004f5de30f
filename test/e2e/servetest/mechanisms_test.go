package servetest

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestSingleMechanism: accounts whose servers offer only XOAUTH2 (as Microsoft's do) or only
// OAUTHBEARER, with no sasl setting. mailkey token's output logs in with that mechanism, and
// password-only clients log in through mailkey serve on IMAP, POP3 and SMTP: serve picks the
// mechanism each server offers.
func TestSingleMechanism(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t, e2e.WithSingleMechanismServers())
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 3) // a refresh token, access tokens and the app passwords
	m := &mk{mailkeytest.New(t, leaks, mailkeytest.RefreshMargin("1s"))}
	accounts := []struct {
		name, mech string
		l          *e2e.Listeners
		pw         string
	}{{name: "xoauth2", mech: e2e.XOAUTH2, l: s.XOAUTH2Only}, {name: "oauthbearer", mech: e2e.OAUTHBEARER, l: s.OAuthBearerOnly}}
	for i := range accounts {
		a := &accounts[i]
		m.Add(ctx, s, a.name, e2e.ClientPublic, e2e.Alice, "--imap", a.l.IMAP, "--pop3", a.l.POP3, "--smtp", a.l.Submission,
			"--ca-file", s.CAFile, "--scope", "openid", "--scope", "email", "--scope", e2e.ScopeMail)
		m.Import(ctx, s, a.name, e2e.Alice, e2e.AlicePassword)
		a.pw = m.addPassword(ctx, a.name, "clients")
	}

	// mailkey token does not talk to the server: it prints the bare token, or with --sasl the
	// initial response of the mechanism named.
	t.Run("token", func(t *testing.T) {
		for _, a := range accounts {
			tok := m.Token(ctx, a.name)
			if err := e2e.IMAPLogin(ctx, e2e.Loopback(a.l.IMAPPort), e2e.StartTLS, s.TLSConfig(), e2e.Alice, tok, a.mech); err != nil {
				t.Errorf("%s: the token from mailkey token: %v", a.name, err)
			}
			ir := strings.TrimSpace(m.Must(ctx, "", "token", a.name, "--sasl", strings.ToLower(a.mech)).Stdout)
			leaks.Secret("SASL initial response", ir)
			if raw, err := base64.StdEncoding.DecodeString(ir); err != nil || !strings.Contains(string(raw), "auth=Bearer "+tok) {
				t.Fatalf("%s: mailkey token --sasl printed no %s initial response with the token (%v)", a.name, a.mech, err)
			}
			c := dialRaw(t, e2e.Loopback(a.l.IMAPPort)) // loopback counts as secured
			c.until("* OK")
			c.send("a AUTHENTICATE " + a.mech + " " + ir + "\r\n")
			if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
				t.Errorf("%s: AUTHENTICATE %s with mailkey token --sasl's answer: %s", a.name, a.mech, l)
			}
		}
	})

	t.Run("serve", func(t *testing.T) {
		srv := m.serve(ctx)
		for _, a := range accounts {
			c := dialRaw(t, srv.addr["imap"])
			c.until("* OK")
			c.send("a LOGIN " + a.name + " " + a.pw + "\r\n")
			if l := c.until("a "); !strings.HasPrefix(l, "a OK") {
				t.Errorf("%s: IMAP LOGIN through serve: %s", a.name, l)
			}
			c.send("b LOGOUT\r\n")
			c.until("b OK")

			c = dialRaw(t, srv.addr["pop3"])
			c.until("+OK")
			c.send("USER " + a.name + "\r\n")
			c.until("+OK")
			c.send("PASS " + a.pw + "\r\n")
			if l := c.line(); !strings.HasPrefix(l, "+OK") {
				t.Errorf("%s: POP3 login through serve: %s", a.name, l)
			}
			c.send("QUIT\r\n")
			c.until("+OK")

			c = dialRaw(t, srv.addr["smtp"])
			c.until("220 ")
			c.send("EHLO client.example.test\r\n")
			c.until("250 ")
			c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+a.name+"\x00"+a.pw)) + "\r\n")
			if l := c.line(); !strings.HasPrefix(l, "235 ") {
				t.Errorf("%s: SMTP AUTH through serve: %s", a.name, l)
			}
			c.send("QUIT\r\n")
			c.until("221 ")
		}
		if t.Failed() {
			t.Logf("mailkey serve logs:\n%s", srv.logs())
		}
	})
}
