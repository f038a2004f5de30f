package smtpproxy

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
	"github.com/mailkey/mailkey/internal/testwait"
)

const alicePass = "alice-app-password"

type fixture struct {
	srv    *proxy.Server
	auth   *proxytest.Auth
	dialer *proxytest.Dialer
	logs   *proxytest.LogBuffer
	addr   string
	client *tls.Config
}

func setup(t *testing.T, edit func(*fixture)) *fixture {
	t.Helper()
	serverTLS, clientTLS := proxytest.TLS(t)
	f := &fixture{
		auth:   &proxytest.Auth{Users: map[string]proxytest.User{"alice@example.org": {Password: alicePass, Account: "work"}}},
		dialer: &proxytest.Dialer{},
		logs:   &proxytest.LogBuffer{},
		client: clientTLS,
	}
	f.srv = &proxy.Server{
		Protocol:  Protocol{},
		TLSConfig: serverTLS,
		Hostname:  "mx.test",
		Auth:      f.auth,
		Dialer:    f.dialer,
		Logger:    f.logs.Logger(),
		Limits:    proxy.Limits{FailureDelay: -1},
	}
	if edit != nil {
		edit(f)
	}
	f.addr = proxytest.Start(t, f.srv)
	return f
}

func (f *fixture) dial(t *testing.T) *proxytest.Client {
	t.Helper()
	c := proxytest.Dial(t, f.addr)
	c.Expect("220 mx.test ESMTP")
	return c
}

// ehlo sends EHLO and returns the extension keywords.
func ehlo(t *testing.T, c *proxytest.Client, name string) []string {
	t.Helper()
	c.Send("EHLO " + name + "\r\n")
	c.Expect("250-mx.test")
	var ext []string
	for {
		l := c.Line()
		if !strings.HasPrefix(l, "250") || len(l) < 4 {
			t.Fatalf("EHLO reply line %q", l)
		}
		ext = append(ext, l[4:])
		if l[3] == ' ' {
			return ext
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func plain(authz, user, pass string) string { return b64(authz + "\x00" + user + "\x00" + pass) }

func expectSpliced(t *testing.T, c *proxytest.Client) {
	t.Helper()
	c.Send("MAIL FROM:<alice@example.org>\r\n")
	c.Expect("MAIL FROM:<alice@example.org>")
}

func TestExtensions(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	got := strings.Join(ehlo(t, c, "client.test"), ",")
	if want := "PIPELINING,8BITMIME,ENHANCEDSTATUSCODES,STARTTLS,AUTH PLAIN LOGIN"; got != want {
		t.Errorf("extensions %s, want %s", got, want)
	}
	c.Send("HELO client.test\r\n")
	c.Expect("250 mx.test")
	c.Send("NOOP\r\nRSET\r\n")
	c.Expect("250 2.0.0")
	c.Expect("250 2.0.0")
	c.Send("QUIT\r\n")
	c.Expect("221 2.0.0")
	c.ExpectClosed()
}

func TestLogins(t *testing.T) {
	f := setup(t, nil)
	user := "alice@example.org"
	tests := []struct {
		name  string
		steps []string
	}{
		{"PLAIN initial response", []string{"> AUTH PLAIN " + plain("", user, alicePass) + "\r\n"}},
		{"PLAIN continuation", []string{"> auth plain\r\n", "< 334 ", "> " + plain(user, user, alicePass) + "\r\n"}},
		{"LOGIN", []string{"> AUTH LOGIN\r\n", "< 334 VXNlcm5hbWU6", "> " + b64(user) + "\r\n",
			"< 334 UGFzc3dvcmQ6", "> " + b64(alicePass) + "\r\n"}},
		{"LOGIN initial response", []string{"> AUTH LOGIN " + b64(user) + "\r\n",
			"< 334 UGFzc3dvcmQ6", "> " + b64(alicePass) + "\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dialer.Calls()
			c := f.dial(t)
			ehlo(t, c, "[127.0.0.1]")
			for _, s := range tt.steps {
				if strings.HasPrefix(s, "> ") {
					c.Send(s[2:])
				} else {
					c.Expect(s[2:])
				}
			}
			c.Expect("235 2.7.0 ")
			expectSpliced(t, c)
			reqs := f.dialer.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("dialer called %d times", len(reqs)-before)
			}
			if r := reqs[len(reqs)-1]; r.Account != "work" || r.Protocol != proxy.SMTP || r.EHLO != "EHLO [127.0.0.1]" {
				t.Errorf("upstream request %+v", r)
			}
		})
	}
}

func TestEHLOReplayedAsSent(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	ehlo(t, c, "first.test")
	c.Send("ehlo Laptop.Local\r\n")
	c.Expect("250-mx.test")
	for l := c.Line(); !strings.HasPrefix(l, "250 "); l = c.Line() {
	}
	c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
	c.Expect("235 ")
	if r := f.dialer.Requests()[0]; r.EHLO != "ehlo Laptop.Local" {
		t.Errorf("EHLO replayed as %q", r.EHLO)
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
	c.Expect("503 5.5.1 ")
	c.Send("EHLO bad\x01name\r\n")
	c.Expect("501 ")
	ehlo(t, c, "client.test")
	c.Send("MAIL FROM:<a@b>\r\n")
	c.Expect("530 5.7.0 ")
	c.Send("AUTH PLAIN " + plain("", "alice@example.org", "wrong") + "\r\n")
	c.Expect("535 5.7.8 ")
	c.Send("AUTH LOGIN\r\n")
	c.Expect("334 ")
	c.Send("*\r\n")
	c.Expect("501 ")
	c.Send("AUTH PLAIN\r\n")
	c.Expect("334 ")
	c.Send("*\r\n")
	c.Expect("501 ")
	c.Send("AUTH CRAM-MD5\r\n")
	c.Expect("504 ")
	c.Send("AUTH PLAIN " + plain("bob", "alice@example.org", alicePass) + "\r\n")
	c.Expect("535 ")
	c.Send("AUTH LOGIN " + b64("nobody") + "\r\n")
	c.Expect("334 ")
	c.Send(b64(alicePass) + "\r\n")
	c.Expect("535 5.7.8 ")
	if n := f.dialer.Calls(); n != 0 {
		t.Errorf("dialer called %d times", n)
	}
}

func TestGarbageCloses(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxBadCommands = 3 })
	c := f.dial(t)
	c.Send("GET / HTTP/1.1\r\nHost: x\r\nDATA\r\n")
	c.Expect("500 ")
	c.Expect("500 ")
	c.Expect("530 ")
	c.Expect("421 ")
	c.ExpectClosed()
}

func TestOversizedLine(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxLine = 512 })
	c := f.dial(t)
	ehlo(t, c, "x")
	c.Send("AUTH PLAIN " + strings.Repeat("A", 1000) + "\r\n")
	c.Expect("500 ")
	c.ExpectClosed()
	if f.auth.Calls() != 0 || f.dialer.Calls() != 0 {
		t.Error("oversized line reached the authenticator or the dialer")
	}
}

func TestStartTLS(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.srv.AllowPlainAuth = func(c net.Conn) bool { _, ok := c.(*tls.Conn); return ok }
	})
	t.Run("then login", func(t *testing.T) {
		c := f.dial(t)
		ext := strings.Join(ehlo(t, c, "client.test"), ",")
		if strings.Contains(ext, "AUTH") || !strings.Contains(ext, "STARTTLS") {
			t.Errorf("plaintext extensions %s", ext)
		}
		c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
		c.Expect("538 5.7.11 ")
		c.Send("STARTTLS\r\n")
		c.Expect("220 ")
		c.StartTLS(f.client)
		c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
		c.Expect("503 ") // greeting is forgotten after TLS
		ext = strings.Join(ehlo(t, c, "tls.test"), ",")
		if !strings.Contains(ext, "AUTH PLAIN LOGIN") || strings.Contains(ext, "STARTTLS") {
			t.Errorf("extensions over TLS %s", ext)
		}
		c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
		c.Expect("235 ")
		expectSpliced(t, c)
		if r := f.dialer.Requests()[0]; r.EHLO != "EHLO tls.test" {
			t.Errorf("EHLO replayed as %q", r.EHLO)
		}
	})
	t.Run("injection", func(t *testing.T) {
		before := f.auth.Calls()
		c := f.dial(t)
		ehlo(t, c, "client.test")
		c.Send("STARTTLS\r\nEHLO evil\r\nAUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
		c.Expect("421 ")
		c.ExpectClosed()
		if f.auth.Calls() != before {
			t.Error("injected AUTH reached the authenticator")
		}
	})
}

func TestUpstreamFailures(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("connection refused"), "454 4.7.0 "},
		{&proxy.UpstreamError{Message: "5.7.139 SMTP AUTH disabled", Err: proxy.ErrUpstreamAuth}, "535 5.7.8 5.7.139 SMTP AUTH disabled"},
		{fmt.Errorf("read tokens: %w", proxy.ErrLocalFault), "554 5.3.0 mailkey cannot read its own data"},
	} {
		f := setup(t, func(f *fixture) { f.dialer.Err = tt.err })
		c := f.dial(t)
		ehlo(t, c, "x")
		c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
		c.Expect(tt.want)
	}
}

func TestPipelinedAfterAuth(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("EHLO x\r\nAUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
	for l := c.Line(); !strings.HasPrefix(l, "250 "); l = c.Line() {
	}
	c.Expect("235 ")
	c.Expect("MAIL FROM:<a@b>")
	c.Expect("RCPT TO:<c@d>")
}

func TestNoSecretsInLogs(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	ehlo(t, c, "x")
	c.Send("AUTH LOGIN " + b64("alice@example.org") + "\r\n")
	c.Expect("334 ")
	c.Send(b64("x"+alicePass) + "\r\n")
	c.Expect("535 ")
	c.Send("AUTH PLAIN " + plain("", "alice@example.org", alicePass) + "\r\n")
	c.Expect("235 ")
	c.Conn.Close()
	// The session's log line is written before it stops counting as active.
	testwait.WaitFor(t, "the session to end", func() bool { return f.srv.Stats().Active.Load() == 0 })
	logs := f.logs.String()
	for _, secret := range []string{alicePass, b64("x" + alicePass), plain("", "alice@example.org", alicePass)} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"outcome":"ok"`) {
		t.Errorf("session log incomplete:\n%s", logs)
	}
}
