package imapproxy

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
	"github.com/mailkey/mailkey/internal/testwait"
)

const (
	alicePass = "alice-app-password"
	bobPass   = `p a"s\s` // needs quoting: space, quote, backslash
)

type fixture struct {
	srv    *proxy.Server
	auth   *proxytest.Auth
	dialer *proxytest.Dialer
	logs   *proxytest.LogBuffer
	addr   string
	client *tls.Config
}

// setup starts an IMAP proxy; edit may change the server before it starts.
func setup(t *testing.T, edit func(*fixture)) *fixture {
	t.Helper()
	serverTLS, clientTLS := proxytest.TLS(t)
	f := &fixture{
		auth: &proxytest.Auth{Users: map[string]proxytest.User{
			"alice": {Password: alicePass, Account: "work"},
			"bob":   {Password: bobPass, Account: "home"},
		}},
		dialer: &proxytest.Dialer{Capabilities: []string{"IMAP4rev1", "IDLE", "LITERAL+"}},
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
	c.Expect("* OK [CAPABILITY IMAP4rev1 ")
	return c
}

// expectSpliced checks that the session now reaches the echoing upstream.
func expectSpliced(t *testing.T, c *proxytest.Client) {
	t.Helper()
	c.Send("z NOOP\r\n")
	c.Expect("z NOOP")
}

func TestLoginForms(t *testing.T) {
	f := setup(t, nil)
	tests := []struct {
		name    string
		account string
		steps   []string // "> " sends, "< " expects a line prefix
	}{
		{"atoms", "work", []string{"> a LOGIN alice " + alicePass + "\r\n"}},
		{"quoted with escapes", "home", []string{`> a LOGIN "bob" "p a\"s\\s"` + "\r\n"}},
		{"synchronizing literals", "home", []string{
			"> a LOGIN {3}\r\n", "< + ", "> bob {7}\r\n", "< + ", "> " + bobPass + "\r\n"}},
		{"non-synchronizing literals", "home", []string{
			"> a LOGIN {3+}\r\nbob {7+}\r\n" + bobPass + "\r\n"}},
		{"mixed", "home", []string{"> a login bob {7+}\r\n" + bobPass + "\r\n"}},
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
			c.Expect("a OK [CAPABILITY IMAP4rev1 IDLE LITERAL+] Logged in")
			expectSpliced(t, c)
			reqs := f.dialer.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("dialer called %d times, want once", len(reqs)-before)
			}
			if r := reqs[len(reqs)-1]; r.Account != tt.account || r.Protocol != proxy.IMAP || r.ConnID == "" {
				t.Errorf("upstream request %+v, want account %q", r, tt.account)
			}
		})
	}
}

func plain(authz, user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
}

func TestAuthenticatePlain(t *testing.T) {
	f := setup(t, nil)
	t.Run("initial response", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE PLAIN " + plain("", "alice", alicePass) + "\r\n")
		c.Expect("a OK [CAPABILITY ")
		expectSpliced(t, c)
	})
	t.Run("continuation", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a authenticate plain\r\n")
		if l := c.Line(); l != "+ " {
			t.Fatalf("continuation %q, want %q", l, "+ ")
		}
		c.Send(plain("bob", "bob", bobPass) + "\r\n")
		c.Expect("a OK [CAPABILITY ")
		expectSpliced(t, c)
	})
	before := f.dialer.Calls()
	t.Run("cancel", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE PLAIN\r\n")
		c.Expect("+ ")
		c.Send("*\r\n")
		c.Expect("a BAD ")
		c.Send("b NOOP\r\n")
		c.Expect("b OK ")
	})
	t.Run("empty initial response", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE PLAIN =\r\n")
		c.Expect("a BAD ")
	})
	t.Run("bad base64", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE PLAIN !!!!\r\n")
		c.Expect("a BAD ")
	})
	t.Run("other authorization identity", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE PLAIN " + plain("bob", "alice", alicePass) + "\r\n")
		c.Expect("a NO [AUTHORIZATIONFAILED] ")
	})
	t.Run("other mechanism", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a AUTHENTICATE XOAUTH2 dXNlcj0=\r\n")
		c.Expect("a NO ")
	})
	if n := f.dialer.Calls() - before; n != 0 {
		t.Errorf("dialer called %d times for refused logins", n)
	}
}

func TestPreLoginCommands(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("a CAPABILITY\r\n")
	caps := c.Expect("* CAPABILITY ")
	for _, want := range []string{"IMAP4rev1", "AUTH=PLAIN", "STARTTLS", "SASL-IR", "LITERAL+", "ID"} {
		if !strings.Contains(caps+" ", " "+want+" ") {
			t.Errorf("capabilities %q lack %s", caps, want)
		}
	}
	if strings.Contains(caps, "LOGINDISABLED") {
		t.Errorf("loopback client sees LOGINDISABLED: %q", caps)
	}
	c.Expect("a OK ")
	c.Send("b NOOP\r\n")
	c.Expect("b OK ")
	c.Send(`c ID ("name" "imaplib" "version" {3+}` + "\r\n3.1)\r\n")
	c.Expect(`* ID ("name" "mailkey")`)
	c.Expect("c OK ")
	c.Send("d ID NIL\r\n")
	c.Expect("* ID ")
	c.Expect("d OK ")
	c.Send("e LOGOUT\r\n")
	c.Expect("* BYE ")
	c.Expect("e OK ")
	c.ExpectClosed()
	if f.dialer.Calls() != 0 || f.auth.Calls() != 0 {
		t.Errorf("dialer %d, auth %d calls; want none", f.dialer.Calls(), f.auth.Calls())
	}
}

func TestStartTLSThenLogin(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.srv.AllowPlainAuth = func(c net.Conn) bool { _, ok := c.(*tls.Conn); return ok }
	})
	c := f.dial(t)
	c.Send("a CAPABILITY\r\n")
	caps := c.Expect("* CAPABILITY ")
	if !strings.Contains(caps, " LOGINDISABLED") || strings.Contains(caps, "AUTH=PLAIN") {
		t.Errorf("plaintext capabilities %q, want LOGINDISABLED and no AUTH=PLAIN", caps)
	}
	c.Expect("a OK ")
	c.Send("b LOGIN alice " + alicePass + "\r\n")
	c.Expect("b NO [PRIVACYREQUIRED] ")
	c.Send("c STARTTLS\r\n")
	c.Expect("c OK ")
	c.StartTLS(f.client)
	c.Send("d CAPABILITY\r\n")
	caps = c.Expect("* CAPABILITY ")
	if strings.Contains(caps, "LOGINDISABLED") || strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "AUTH=PLAIN") {
		t.Errorf("capabilities over TLS %q", caps)
	}
	c.Expect("d OK ")
	c.Send("e STARTTLS\r\n")
	c.Expect("e BAD ")
	c.Send("f LOGIN alice " + alicePass + "\r\n")
	c.Expect("f OK ")
	expectSpliced(t, c)
}

func TestImplicitTLS(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.ImplicitTLS = true })
	c := proxytest.Dial(t, f.addr)
	c.StartTLS(f.client)
	caps := c.Expect("* OK [CAPABILITY ")
	if strings.Contains(caps, "STARTTLS") {
		t.Errorf("STARTTLS offered over implicit TLS: %q", caps)
	}
	c.Send("a LOGIN alice " + alicePass + "\r\n")
	c.Expect("a OK ")
	expectSpliced(t, c)
}

func TestStartTLSInjectionRefused(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("a STARTTLS\r\nb LOGIN alice " + alicePass + "\r\n")
	c.Expect("* BYE ")
	c.ExpectClosed()
	if f.dialer.Calls() != 0 || f.auth.Calls() != 0 {
		t.Errorf("dialer %d, auth %d calls after injection; want none", f.dialer.Calls(), f.auth.Calls())
	}
	if n := f.srv.Stats().Injections.Load(); n != 1 {
		t.Errorf("injections counted %d, want 1", n)
	}
}

func TestOversizedInput(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxLine = 1024 })
	t.Run("line", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a LOGIN alice " + strings.Repeat("x", 2000) + "\r\n")
		c.Expect("* BYE [TOOBIG] ")
		c.ExpectClosed()
	})
	t.Run("synchronizing literal", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a LOGIN alice {5000}\r\n")
		c.Expect("a BAD [TOOBIG] ")
		c.Send("b NOOP\r\n")
		c.Expect("b OK ")
	})
	t.Run("non-synchronizing literal", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a LOGIN alice {5000+}\r\n")
		c.Expect("* BYE [TOOBIG] ")
		c.ExpectClosed()
	})
	t.Run("literals adding up", func(t *testing.T) {
		c := f.dial(t)
		c.Send("a LOGIN {600+}\r\n" + strings.Repeat("u", 600) + " {600+}\r\n")
		c.Expect("* BYE [TOOBIG] ")
		c.ExpectClosed()
	})
	if f.dialer.Calls() != 0 || f.auth.Calls() != 0 {
		t.Errorf("dialer %d, auth %d calls; want none", f.dialer.Calls(), f.auth.Calls())
	}
}

func TestGarbageCloses(t *testing.T) {
	f := setup(t, func(f *fixture) { f.srv.Limits.MaxBadCommands = 3 })
	c := f.dial(t)
	c.Send("GET / HTTP/1.1\r\n")
	c.Expect("GET BAD ")
	c.Send("\x16\x03\x01garbage\r\n")
	c.Expect("* BAD ")
	c.Send("a SELECT INBOX\r\n")
	c.Expect("a BAD ")
	c.Expect("* BYE ")
	c.ExpectClosed()
	if f.dialer.Calls() != 0 {
		t.Errorf("dialer called %d times", f.dialer.Calls())
	}
}

func TestWrongCredentials(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("a LOGIN alice wrong\r\n")
	c.Expect("a NO [AUTHENTICATIONFAILED] ")
	c.Send("b LOGIN mallory " + alicePass + "\r\n")
	c.Expect("b NO [AUTHENTICATIONFAILED] ")
	c.Send("c LOGIN alice " + alicePass + "\r\n")
	c.Expect("c OK ")
	if n := f.dialer.Calls(); n != 1 {
		t.Errorf("dialer called %d times, want once (for the right password)", n)
	}
}

func TestFailedLoginsRateLimited(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.srv.Limits.MaxLoginFailures = 2
		f.srv.Limits.FailureWindow = time.Hour
	})
	c := f.dial(t)
	c.Send("a LOGIN alice wrong1\r\nb LOGIN alice wrong2\r\n")
	c.Expect("a NO [AUTHENTICATIONFAILED] ")
	c.Expect("b NO [AUTHENTICATIONFAILED] ")
	c.Send("c LOGIN alice " + alicePass + "\r\n")
	c.Expect("c NO [UNAVAILABLE] ")
	if n := f.auth.Calls(); n != 2 {
		t.Errorf("password checked %d times, want 2: the third login must not be checked", n)
	}
	if f.dialer.Calls() != 0 {
		t.Errorf("dialer called")
	}
	if n := f.srv.Stats().RateLimited.Load(); n != 1 {
		t.Errorf("rate limited %d, want 1", n)
	}
}

func TestUpstreamFailures(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("dial tcp: connection refused"), "a NO [UNAVAILABLE] Mail server temporarily unavailable, try again later"},
		{&proxy.UpstreamError{Message: "Provider\r\n* BYE injected [x]", Err: proxy.ErrUpstreamAuth},
			"a NO [AUTHENTICATIONFAILED] Provider  * BYE injected x"},
		{&proxy.UpstreamError{Message: "Token refresh failed, run mailkey login work"},
			"a NO [UNAVAILABLE] Token refresh failed, run mailkey login work"},
		{&proxy.UpstreamError{Message: "mailkey cannot read the stored token for work", Err: proxy.ErrLocalFault},
			"a NO [CONTACTADMIN] mailkey cannot read the stored token for work"},
	}
	for _, tt := range tests {
		f := setup(t, func(f *fixture) { f.dialer.Err = tt.err })
		c := f.dial(t)
		c.Send("a LOGIN alice " + alicePass + "\r\n")
		if l := c.Line(); l != tt.want {
			t.Errorf("dialer error %v: got %q, want %q", tt.err, l, tt.want)
		}
		c.Send("b NOOP\r\n")
		c.Expect("b OK ")
	}
}

func TestPipelinedAfterLoginReachesUpstream(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.dialer.Capabilities = nil
		f.dialer.Sent = []byte("* upstream said this first\r\n")
	})
	c := f.dial(t)
	c.Send("a LOGIN alice " + alicePass + "\r\nb SELECT INBOX\r\nc IDLE\r\n")
	c.Expect("a OK Logged in")
	c.Expect("* upstream said this first")
	c.Expect("b SELECT INBOX")
	c.Expect("c IDLE")
}

func TestSpliceIsByteExact(t *testing.T) {
	f := setup(t, nil)
	c := f.dial(t)
	c.Send("a LOGIN alice " + alicePass + "\r\n")
	c.Expect("a OK ")
	payload := make([]byte, 5<<20)
	rand.Read(payload)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Conn.Write(payload)
		errc <- err
	}()
	got := make([]byte, len(payload))
	c.Conn.SetReadDeadline(testwait.Deadline(t))
	if _, err := io.ReadFull(c.R, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload changed on its way through the proxy")
	}
	c.Conn.Close()
	waitFor(t, func() bool { return f.srv.Stats().Active.Load() == 0 })
	st := f.srv.Stats()
	if up, down := st.BytesUpstream.Load(), st.BytesClient.Load(); up != int64(len(payload)) || down != int64(len(payload)) {
		t.Errorf("counted %d bytes up, %d down; want %d each", up, down, len(payload))
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `"bytes_in":5242880`) || !strings.Contains(logs, `"bytes_out":5242880`) || !strings.Contains(logs, `"account":"work"`) {
		t.Errorf("session log lacks byte counts or account:\n%s", logs)
	}
}

func TestTimeouts(t *testing.T) {
	// The pre-login timeout also bounds the writes of the greeting and of the BYE, so a
	// machine that stalls the session for longer than the timeout loses them: that proves
	// nothing either way. Such a try is repeated with a timeout four times as long, up to
	// one that no machine needs.
	t.Run("before login", func(t *testing.T) {
		const greeting = "* OK [CAPABILITY IMAP4rev1 "
		for d := 100 * time.Millisecond; ; d *= 4 {
			f := setup(t, func(f *fixture) { f.srv.Limits.PreAuthTimeout = d })
			c := proxytest.Dial(t, f.addr)
			c.Conn.SetReadDeadline(testwait.Deadline(t))
			b, err := io.ReadAll(c.R) // the client says nothing: all up to the server's close
			all := string(b)
			greeted := strings.HasPrefix(all, greeting)
			if err == nil && greeted {
				if _, bye, _ := strings.Cut(all, "\r\n"); strings.HasPrefix(bye, "* BYE ") && strings.Count(bye, "\r\n") == 1 && strings.HasSuffix(bye, "\r\n") {
					waitFor(t, func() bool { return f.srv.Stats().Timeouts.Load() == 1 })
					return
				}
			}
			// Only the lost greeting or the lost BYE are the machine's fault.
			lost := err == nil && (all == "" || greeted && strings.Count(all, "\r\n") == 1 && strings.HasSuffix(all, "\r\n"))
			if !lost || d > time.Minute {
				t.Fatalf("with a %v timeout the proxy sent %q, then %v; want the greeting, a BYE and the close", d, all, err)
			}
			t.Logf("with a %v timeout the proxy sent only %q: trying a longer one", d, all)
		}
	})
	t.Run("idle after login", func(t *testing.T) {
		f := setup(t, func(f *fixture) { f.srv.Limits.IdleTimeout = 100 * time.Millisecond })
		c := f.dial(t)
		c.Send("a LOGIN alice " + alicePass + "\r\n")
		c.Expect("a OK ")
		c.ExpectClosed()
		waitFor(t, func() bool { return f.srv.Stats().Timeouts.Load() == 1 })
	})
}

func TestNoSecretsInLogs(t *testing.T) {
	f := setup(t, func(f *fixture) {
		f.dialer.Err = &proxy.UpstreamError{Message: "upstream said no", Err: proxy.ErrUpstreamAuth}
	})
	c := f.dial(t)
	c.Send("a LOGIN alice wrong-" + alicePass + "\r\n")
	c.Expect("a NO ")
	c.Send("b LOGIN alice " + alicePass + "\r\n")
	c.Expect("b NO ")
	c.Send("c AUTHENTICATE PLAIN " + plain("", "bob", bobPass) + "\r\n")
	c.Expect("c NO ")
	c.Send("d LOGOUT\r\n")
	c.Expect("* BYE")
	c.Conn.Close()
	waitFor(t, func() bool { return f.srv.Stats().Active.Load() == 0 })
	logs := f.logs.String()
	for _, secret := range []string{alicePass, "p a", plain("", "bob", bobPass)} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, logs)
		}
	}
	for _, want := range []string{`"outcome":"quit"`, `"login":"alice"`, `"protocol":"imap"`, `"conn":`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
}

// waitFor polls cond until the test's deadline; nothing is timed.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testwait.WaitFor(t, "the proxy's state", cond)
}
