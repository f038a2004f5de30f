package pop3proxy

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
	"github.com/mailkey/mailkey/internal/testwait"
)

const alicePass = "alice app password" // spaces: PASS takes the rest of the line

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
		auth:   &proxytest.Auth{Users: map[string]proxytest.User{"alice": {Password: alicePass, Account: "work"}}},
		dialer: &proxytest.Dialer{},
		logs:   &proxytest.LogBuffer{},
		client: clientTLS,
	}
	f.srv = &proxy.Server{
		Protocol:  Protocol{},
		TLSConfig: serverTLS,
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
	c.Expect("+OK ")
	return c
}

func expectSpliced(t *testing.T, c *proxytest.Client) {
	t.Helper()
	c.Send("STAT\r\n")
	c.Expect("STAT")
}

func plain(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestLogins(t *testing.T) {
	f := setup(t, nil)
	tests := []struct {
		name  string
		steps []string
	}{
		{"USER and PASS", []string{"> USER alice\r\n", "< +OK", "> PASS " + alicePass + "\r\n"}},
		{"lower case", []string{"> user alice\r\n", "< +OK", "> pass " + alicePass + "\r\n"}},
		{"AUTH PLAIN initial response", []string{"> AUTH PLAIN " + plain("", "alice", alicePass) + "\r\n"}},
		{"AUTH PLAIN continuation", []string{"> AUTH PLAIN\r\n", "< + ", "> " + plain("alice", "alice", alicePass) + "\r\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.dialer.Calls()
			c := f.dial(t)
			for _, s := range tt.steps {
				if strings.HasPrefix(s, "> ") {
					c.Send(s[2:])
				} else {
					c.Expect(s[2:])
				}
			}
			c.Expect("+OK Logged in")
			expectSpliced(t, c)
			reqs := f.dialer.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("dialer called %d times, want once", len(reqs)-before)
			}
			if r := reqs[len(reqs)-1]; r.Account != "work" || r.Protocol != proxy.POP3 {
				t.Errorf("upstream request %+v", r)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("CAPA\r\n")
	var caps []string
	for l := c.Line(); l != "."; l = c.Line() {
		caps = append(caps, l)
	}
	for _, want := range []string{"STLS", "USER", "SASL PLAIN", "RESP-CODES", "AUTH-RESP-CODE"} {
		if !strings.Contains(strings.Join(caps, "\n")+"\n", "\n"+want+"\n") {
			t.Errorf("CAPA %q lacks %s", caps, want)
		}
	}
	c.Send("AUTH\r\n")
	c.Expect("+OK")
	c.Expect("PLAIN")
	c.Expect(".")
	c.Send("PASS " + alicePass + "\r\n")
	c.Expect("-ERR ")
	c.Send("USER alice\r\nPASS wrong\r\n")
	c.Expect("+OK")
	c.Expect("-ERR [AUTH] ")
	c.Send("USER mallory\r\nPASS " + alicePass + "\r\n")
	c.Expect("+OK")
	c.Expect("-ERR [AUTH] ")
	c.Send("AUTH PLAIN\r\n")
	c.Expect("+ ")
	c.Send("*\r\n")
	c.Expect("-ERR ")
	c.Send("AUTH PLAIN =\r\n")
	c.Expect("-ERR ")
	c.Send("AUTH PLAIN " + plain("root", "alice", alicePass) + "\r\n")
	c.Expect("-ERR [AUTH] ")
	c.Send("AUTH CRAM-MD5\r\n")
	c.Expect("-ERR ")
	c.Send("QUIT\r\n")
	c.Expect("+OK")
	c.ExpectClosed()
	if n := f.dialer.Calls(); n != 0 {
		t.Errorf("dialer called %d times", n)
	}
}

func TestGarbageCloses(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxBadCommands = 3 })
	c := f.dial(t)
	c.Send("GET / HTTP/1.1\r\nRETR 1\r\nHost: x\r\n")
	c.Expect("-ERR ")
	c.Expect("-ERR ")
	c.Expect("-ERR ")
	c.Expect("-ERR Too many")
	c.ExpectClosed()
}

func TestOversizedLine(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxLine = 512 })
	c := f.dial(t)
	c.Send("USER " + strings.Repeat("a", 1000) + "\r\n")
	c.Expect("-ERR Line too long")
	c.ExpectClosed()
	if f.auth.Calls() != 0 || f.dialer.Calls() != 0 {
		t.Error("oversized line reached the authenticator or the dialer")
	}
}

func TestSTLS(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.srv.AllowPlainAuth = func(c net.Conn) bool { _, ok := c.(*tls.Conn); return ok }
	})
	t.Run("then login", func(t *testing.T) {
		c := f.dial(t)
		c.Send("USER alice\r\n")
		c.Expect("-ERR ")
		c.Send("STLS\r\n")
		c.Expect("+OK ")
		c.StartTLS(f.client)
		c.Send("CAPA\r\n")
		c.Expect("+OK")
		for l := c.Line(); l != "."; l = c.Line() {
			if l == "STLS" {
				t.Error("STLS offered over TLS")
			}
		}
		c.Send("USER alice\r\nPASS " + alicePass + "\r\n")
		c.Expect("+OK")
		c.Expect("+OK Logged in")
		expectSpliced(t, c)
	})
	t.Run("injection", func(t *testing.T) {
		before := f.auth.Calls()
		c := f.dial(t)
		c.Send("STLS\r\nUSER alice\r\nPASS " + alicePass + "\r\n")
		c.Expect("-ERR ")
		c.ExpectClosed()
		if f.auth.Calls() != before {
			t.Error("injected login reached the authenticator")
		}
	})
}

func TestUpstreamFailures(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("connection refused"), "-ERR [SYS/TEMP] "},
		{proxy.ErrUpstreamAuth, "-ERR [AUTH] "},
		{proxy.ErrLocalFault, "-ERR [SYS/PERM] mailkey cannot read its own data"},
	} {
		f := setup(t, func(f *fixture) { f.dialer.Err = tt.err })
		c := f.dial(t)
		c.Send("AUTH PLAIN " + plain("", "alice", alicePass) + "\r\n")
		c.Expect(tt.want)
	}
}

func TestPipelinedAfterLogin(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("USER alice\r\nPASS " + alicePass + "\r\nLIST\r\nUIDL\r\n")
	c.Expect("+OK")
	c.Expect("+OK Logged in")
	c.Expect("LIST")
	c.Expect("UIDL")
}

func TestNoSecretsInLogs(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("USER alice\r\nPASS wrong " + alicePass + "\r\n")
	c.Expect("+OK")
	c.Expect("-ERR")
	c.Send("AUTH PLAIN " + plain("", "alice", alicePass) + "\r\n")
	c.Expect("+OK Logged in")
	c.Conn.Close()
	// The session's log line is written before it stops counting as active.
	testwait.WaitFor(t, "the session to end", func() bool { return f.srv.Stats().Active.Load() == 0 })
	logs := f.logs.String()
	for _, secret := range []string{alicePass, plain("", "alice", alicePass)} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, `"outcome":"ok"`) || !strings.Contains(logs, `"account":"work"`) {
		t.Errorf("session log incomplete:\n%s", logs)
	}
}
