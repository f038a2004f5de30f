package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/certs"
	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/proxy"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/internal/tokens"
	"github.com/mailkey/mailkey/internal/upstream"
)

// fakeTokens hands out tok-1, and tok-2 after a forced refresh.
type fakeTokens struct {
	mu     sync.Mutex
	cur    string
	forced []string
	getErr error
}

func (f *fakeTokens) Get(context.Context, string) (*store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.getErr != nil {
		return nil, f.getErr
	}
	return &store.Record{AccessToken: f.cur}, nil
}

func (f *fakeTokens) ForceRefresh(_ context.Context, _ string, stale string) (*store.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forced = append(f.forced, stale)
	f.cur = "tok-2-fresh-access-token"
	return &store.Record{AccessToken: f.cur}, nil
}

func (f *fakeTokens) RefreshDue(ctx context.Context, a string, _ time.Duration) (*store.Record, error) {
	return f.Get(ctx, a)
}

const tok1 = "tok-1-first-access-token"

// upstream is a scripted mail server on loopback: script runs for each
// connection, with a line reader and a writer.
type scriptedServer struct {
	t     *testing.T
	tls   *tls.Config
	ca    string
	port  int
	mu    sync.Mutex
	conns int
}

type peer struct {
	t    *testing.T
	c    net.Conn
	r    *bufio.Reader
	srvT *tls.Config
}

func (p *peer) send(s string) { p.c.Write([]byte(s)) }

func (p *peer) expect(prefix string) string {
	p.t.Helper()
	l, err := p.r.ReadString('\n')
	if err != nil {
		p.t.Errorf("upstream: reading, want %q: %v", prefix, err)
		return ""
	}
	l = strings.TrimRight(l, "\r\n")
	if !strings.HasPrefix(l, prefix) {
		p.t.Errorf("upstream got %q, want prefix %q", l, prefix)
	}
	return l
}

func (p *peer) startTLS() {
	tc := tls.Server(p.c, p.srvT)
	if err := tc.Handshake(); err != nil {
		p.t.Errorf("upstream handshake: %v", err)
		return
	}
	p.c, p.r = tc, bufio.NewReader(tc)
}

// bearer decodes an initial response and returns the token in it.
func bearer(t *testing.T, b64 string) string {
	b, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Errorf("initial response: %v", err)
		return ""
	}
	_, tok, _ := strings.Cut(string(b), "auth=Bearer ")
	tok, _, _ = strings.Cut(tok, "\x01")
	return tok
}

func newUpstream(t *testing.T, implicit bool, script func(p *peer, n int)) *scriptedServer {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := certs.Generate(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	u := &scriptedServer{t: t, tls: &tls.Config{Certificates: []tls.Certificate{cert}}, ca: certFile}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	u.port = ln.Addr().(*net.TCPAddr).Port
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns++
			n := u.conns
			u.mu.Unlock()
			go func() {
				defer c.Close()
				c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
				if implicit {
					tc := tls.Server(c, u.tls)
					c = tc
				}
				script(&peer{t: t, c: c, r: bufio.NewReader(c), srvT: u.tls}, n)
			}()
		}
	}()
	return u
}

func (u *scriptedServer) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func (u *scriptedServer) dialer(t *testing.T, proto provider.Protocol, implicit bool, tok *fakeTokens) *Dialer {
	t.Helper()
	a := &config.Account{Name: "work", Email: "me@example.test", CAFile: u.ca,
		Servers: map[provider.Protocol]provider.Server{proto: {Host: "localhost", Port: u.port, ImplicitTLS: implicit, Protocol: proto}}}
	d, err := NewDialer([]*config.Account{a}, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.command = testCommand
	return d
}

// testCommand words next steps as the CLI does (Config.Command).
func testCommand(step Step, account string) string {
	return map[Step]string{StepLogin: "mailkey login ", StepTest: "mailkey test "}[step] + account
}

// TestMessagesWithoutCommand: without Config.Command a message to the mail
// client names no command, only what went wrong.
func TestMessagesWithoutCommand(t *testing.T) {
	d := &Dialer{}
	for _, err := range []error{&tokens.NeedsLoginError{Account: "work"}, &tokens.ClientConfigError{Account: "work"}, &tokens.EndpointChangedError{Account: "work"}} {
		var ue *proxy.UpstreamError
		if !errors.As(d.tokenFailure("work", err), &ue) || strings.Contains(ue.Message, "mailkey login") || strings.Contains(ue.Message, "run ") {
			t.Errorf("message for %T: %+v", err, ue)
		}
	}
}

func dialCtx(t *testing.T) context.Context {
	return testwait.Context(t)
}

// imapScript accepts tokens for which ok returns true.
func imapScript(ok func(n int, tok string) string) func(p *peer, n int) {
	return func(p *peer, n int) {
		p.send("* OK ready\r\n")
		p.expect("m0 STARTTLS")
		p.send("m0 OK begin\r\n")
		p.startTLS()
		p.expect("m1 CAPABILITY")
		p.send("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=OAUTHBEARER\r\nm1 OK done\r\n")
		l := p.expect("m2 AUTHENTICATE XOAUTH2 ")
		f := strings.Fields(l)
		reply := ok(n, bearer(p.t, f[len(f)-1]))
		if strings.Contains(reply, " NO ") && !strings.Contains(reply, "UNAVAILABLE") {
			p.send("+ eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n")
			p.expect("")
		}
		p.send(reply)
		if strings.Contains(reply, " OK ") {
			p.expect("x NOOP")
			p.send("x OK noop\r\n")
		}
	}
}

func TestIMAPLoginAndCapabilities(t *testing.T) {
	u := newUpstream(t, false, imapScript(func(_ int, tok string) string {
		if tok != tok1 {
			return "m2 NO [AUTHENTICATIONFAILED] no\r\n"
		}
		return "m2 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n"
	}))
	tok := &fakeTokens{cur: tok1}
	up, err := u.dialer(t, provider.IMAP, false, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Conn.Close()
	if strings.Join(up.Capabilities, " ") != "IMAP4rev1 IDLE MOVE" {
		t.Errorf("capabilities %q", up.Capabilities)
	}
	// The connection is positioned right after the login: bytes pass.
	up.Conn.Write([]byte("x NOOP\r\n"))
	l, err := up.Reader.ReadString('\n')
	if err != nil || l != "x OK noop\r\n" {
		t.Errorf("after login: %q %v", l, err)
	}
	if len(tok.forced) != 0 {
		t.Errorf("forced refreshes: %d", len(tok.forced))
	}
}

// A refused token is refreshed once and the login retried on a new
// connection.
func TestRefusedTokenRetriedOnce(t *testing.T) {
	u := newUpstream(t, false, imapScript(func(_ int, tok string) string {
		if tok == tok1 {
			return "m2 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
		}
		return "m2 OK [CAPABILITY IMAP4rev1] Logged in\r\n"
	}))
	tok := &fakeTokens{cur: tok1}
	up, err := u.dialer(t, provider.IMAP, false, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if err != nil {
		t.Fatal(err)
	}
	up.Conn.Write([]byte("x NOOP\r\n"))
	up.Reader.ReadString('\n')
	up.Conn.Close()
	if len(tok.forced) != 1 || tok.forced[0] != tok1 {
		t.Errorf("forced refreshes %q, want one of the refused token", tok.forced)
	}
	if u.count() != 2 {
		t.Errorf("%d upstream connections, want 2", u.count())
	}
}

func TestRefusedTwice(t *testing.T) {
	u := newUpstream(t, false, imapScript(func(int, string) string {
		return "m2 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
	}))
	tok := &fakeTokens{cur: tok1}
	_, err := u.dialer(t, provider.IMAP, false, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if !errors.Is(err, proxy.ErrUpstreamAuth) {
		t.Fatalf("err = %v, want ErrUpstreamAuth", err)
	}
	var cm proxy.ClientMessager
	if !errors.As(err, &cm) || cm.ClientMessage() != "mailkey could not log in to localhost for work: the server refused the token (run mailkey test work)" {
		t.Errorf("client message: %v", err)
	}
	if u.count() != 2 || len(tok.forced) != 1 {
		t.Errorf("%d connections, %d forced refreshes; want 2 and 1", u.count(), len(tok.forced))
	}
	for _, s := range []string{tok1, tok.cur} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error quotes a token: %v", err)
		}
	}
}

// A temporary failure is not a refusal: no forced refresh.
func TestTemporaryFailure(t *testing.T) {
	u := newUpstream(t, false, imapScript(func(int, string) string {
		return "m2 NO [UNAVAILABLE] Temporary authentication failure\r\n"
	}))
	tok := &fakeTokens{cur: tok1}
	_, err := u.dialer(t, provider.IMAP, false, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if err == nil || errors.Is(err, proxy.ErrUpstreamAuth) || len(tok.forced) != 0 {
		t.Fatalf("err = %v, forced %d", err, len(tok.forced))
	}
	if f := proxy.Classify(err); f.Auth || !strings.Contains(f.Message, "try again later") {
		t.Errorf("classified as %+v", f)
	}
}

// Bytes after the STARTTLS go-ahead, before TLS, end the connection.
func TestUpstreamSTARTTLSInjection(t *testing.T) {
	u := newUpstream(t, false, func(p *peer, _ int) {
		p.send("* OK ready\r\n")
		p.expect("m0 STARTTLS")
		p.send("m0 OK begin\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
		p.r.ReadString('\n')
	})
	_, err := u.dialer(t, provider.IMAP, false, &fakeTokens{cur: tok1}).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if !errors.Is(err, upstream.ErrBufferedBeforeTLS) {
		t.Fatalf("err = %v", err)
	}
}

func TestNeedsLogin(t *testing.T) {
	u := newUpstream(t, false, func(*peer, int) {})
	tok := &fakeTokens{getErr: &tokens.NeedsLoginError{Account: "work", Code: "invalid_grant"}}
	_, err := u.dialer(t, provider.IMAP, false, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if !errors.Is(err, proxy.ErrUpstreamAuth) || !strings.Contains(proxy.Classify(err).Message, "run mailkey login work") {
		t.Fatalf("err = %v", err)
	}
	if u.count() != 0 {
		t.Errorf("dialled without a token")
	}
}

// POP3 over implicit TLS with a token too long for one AUTH line: the
// initial response goes after an empty challenge (RFC 5034 §4).
func TestPOP3LongToken(t *testing.T) {
	long := strings.Repeat("L", 400)
	u := newUpstream(t, true, func(p *peer, _ int) {
		p.send("+OK ready\r\n")
		p.expect("CAPA")
		p.send("+OK\r\nUSER\r\nSASL OAUTHBEARER XOAUTH2\r\n.\r\n")
		p.expect("AUTH OAUTHBEARER")
		p.send("+ \r\n")
		ir := p.expect("")
		b, _ := base64.StdEncoding.DecodeString(ir)
		if !strings.HasPrefix(string(b), "n,a=me@example.test,") || !strings.Contains(string(b), "auth=Bearer "+long+"\x01") {
			p.t.Errorf("OAUTHBEARER response %q", b)
		}
		p.send("+OK logged in\r\n")
	})
	d := u.dialer(t, provider.POP3, true, &fakeTokens{cur: long})
	d.accounts["work"].conf.SASL = "oauthbearer"
	up, err := d.Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.POP3, Account: "work"})
	if err != nil {
		t.Fatal(err)
	}
	up.Conn.Close()
}

// SMTP replays the client's EHLO before and after STARTTLS, then AUTH.
func TestSMTPReplaysEHLO(t *testing.T) {
	u := newUpstream(t, false, func(p *peer, _ int) {
		p.send("220 smtp ready\r\n")
		p.expect("EHLO laptop.example")
		p.send("250-smtp\r\n250 STARTTLS\r\n")
		p.expect("STARTTLS")
		p.send("220 go\r\n")
		p.startTLS()
		p.expect("EHLO laptop.example")
		p.send("250-smtp\r\n250-AUTH PLAIN XOAUTH2\r\n250 8BITMIME\r\n")
		l := p.expect("AUTH XOAUTH2 ")
		if bearer(p.t, strings.Fields(l)[2]) != tok1 {
			p.t.Errorf("wrong token")
		}
		p.send("235 2.7.0 ok\r\n")
	})
	up, err := u.dialer(t, provider.SMTP, false, &fakeTokens{cur: tok1}).Dial(dialCtx(t),
		proxy.UpstreamRequest{Protocol: proxy.SMTP, Account: "work", EHLO: "EHLO laptop.example"})
	if err != nil {
		t.Fatal(err)
	}
	up.Conn.Close()
}

func TestSMTPTemporary(t *testing.T) {
	u := newUpstream(t, true, func(p *peer, _ int) {
		p.send("220 smtp ready\r\n")
		p.expect("EHLO localhost")
		p.send("250-smtp\r\n250 AUTH XOAUTH2\r\n")
		p.expect("AUTH XOAUTH2 ")
		p.send("454 4.7.0 Temporary authentication failure\r\n")
	})
	tok := &fakeTokens{cur: tok1}
	_, err := u.dialer(t, provider.SMTP, true, tok).Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.SMTP, Account: "work"})
	if err == nil || errors.Is(err, proxy.ErrUpstreamAuth) || len(tok.forced) != 0 {
		t.Fatalf("err = %v, forced %d", err, len(tok.forced))
	}
}

func TestCheckListen(t *testing.T) {
	cases := []struct {
		name, addr string
		tls, allow bool
		ok         bool
	}{
		{"imap", "127.0.0.1:1143", false, false, true},
		{"imap", "[::1]:1143", false, false, true},
		{"imap", "localhost:1143", false, false, true},
		{"imap", "0.0.0.0:1143", false, true, false},
		{"imap", ":1143", false, true, false},
		{"imaps", "192.0.2.1:993", true, false, false},
		{"imaps", "192.0.2.1:993", true, true, true},
		{"status", "0.0.0.0:8025", false, false, false},
		{"status", "0.0.0.0:8025", false, true, true},
		{"imap", "nonsense", false, false, false},
	}
	for _, c := range cases {
		err := checkListen(c.name, c.addr, c.tls, c.allow)
		if (err == nil) != c.ok {
			t.Errorf("checkListen(%s, %s, tls=%v, allow=%v) = %v", c.name, c.addr, c.tls, c.allow, err)
		}
	}
}

// A server that quotes the token or the initial response back in its
// refusal must not get either into the error, the client's message or the
// logs.
func TestRefusalQuotingTokenRedacted(t *testing.T) {
	u := newUpstream(t, false, func(p *peer, _ int) {
		p.send("* OK ready\r\n")
		p.expect("m0 STARTTLS")
		p.send("m0 OK begin\r\n")
		p.startTLS()
		p.expect("m1 CAPABILITY")
		p.send("* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2\r\nm1 OK done\r\n")
		f := strings.Fields(p.expect("m2 AUTHENTICATE XOAUTH2 "))
		ir := f[len(f)-1]
		p.send("m2 NO [AUTHENTICATIONFAILED] bad token " + bearer(p.t, ir) + " in " + ir + "\r\n")
	})
	var logs syncBuf
	tok := &fakeTokens{cur: tok1}
	a := &config.Account{Name: "work", Email: "me@example.test", CAFile: u.ca,
		Servers: map[provider.Protocol]provider.Server{provider.IMAP: {Host: "localhost", Port: u.port, Protocol: provider.IMAP}}}
	d, err := NewDialer([]*config.Account{a}, tok, slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Dial(dialCtx(t), proxy.UpstreamRequest{Protocol: proxy.IMAP, Account: "work"})
	if !errors.Is(err, proxy.ErrUpstreamAuth) {
		t.Fatalf("err = %v, want ErrUpstreamAuth", err)
	}
	if !strings.Contains(err.Error(), "bad token [redacted]") || !strings.Contains(logs.String(), "bad token [redacted]") {
		t.Errorf("the refusal is not quoted, redacted, in the error and the logs:\n%v\n%s", err, logs.String())
	}
	secrets := []string{tok1, tok.cur}
	for _, tk := range secrets[:2] {
		ir, err := sasl.InitialResponseBase64("XOAUTH2", "me@example.test", tk, "localhost", u.port)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, ir)
	}
	for _, secret := range secrets {
		for what, text := range map[string]string{"error": err.Error(), "client message": proxy.Classify(err).Message, "logs": logs.String()} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s quotes a token", what)
			}
		}
	}
}
