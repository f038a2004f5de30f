package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/proxy/proxytest"
	"github.com/mailkey/mailkey/internal/testwait"
)

const testToken = "ya29.upstream-test-token-0123456789"

// testServer is a scripted SMTP server on loopback, with a certificate for
// 127.0.0.1; script runs for each connection, one after the other.
func testServer(t *testing.T, script func(c net.Conn, r *bufio.Reader, tc *tls.Config)) (provider.Server, *tls.Config) {
	t.Helper()
	srvTLS, cliTLS := proxytest.TLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for c, err := ln.Accept(); err == nil; c, err = ln.Accept() {
			c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
			script(c, bufio.NewReader(c), srvTLS)
			c.Close()
		}
	}()
	srv := provider.Server{Scheme: "smtp", Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Protocol: provider.SMTP}
	return srv, cliTLS
}

// expect reads a line and fails the test unless it starts with prefix.
func expect(t *testing.T, r *bufio.Reader, prefix string) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(l, prefix) {
		t.Errorf("server got %q (%v), want %q", l, err, prefix)
	}
	return strings.TrimRight(l, "\r\n")
}

// The transcript of a STARTTLS login: the plain text on both sides of the
// handshake, a note where it happens, no TLS record, and never the token
// or the initial response.
func TestTranscriptAcrossSTARTTLS(t *testing.T) {
	srv, cfg := testServer(t, func(c net.Conn, r *bufio.Reader, tc *tls.Config) {
		c.Write([]byte("220 mail.test ESMTP\r\n"))
		expect(t, r, "EHLO localhost")
		c.Write([]byte("250-mail.test\r\n250 STARTTLS\r\n"))
		expect(t, r, "STARTTLS")
		c.Write([]byte("220 2.0.0 go ahead\r\n"))
		s := tls.Server(c, tc)
		r = bufio.NewReader(s)
		expect(t, r, "EHLO localhost")
		s.Write([]byte("250-mail.test\r\n250 AUTH XOAUTH2\r\n"))
		auth := expect(t, r, "AUTH XOAUTH2 ")
		// A server that echoes the initial response, in two writes.
		ir := strings.TrimPrefix(auth, "AUTH XOAUTH2 ")
		s.Write([]byte("235 2.7.0 welcome " + ir[:10]))
		s.Write([]byte(ir[10:] + "\r\n"))
	})
	var mu sync.Mutex
	var lines []string
	s, err := LoginSMTP(testwait.Context(t), &Options{
		Server: srv, TLS: cfg, User: "alice@example.test",
		Token: func(context.Context) (string, error) { return testToken, nil },
		Transcript: func(dir Direction, line string) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, string(dir)+": "+line)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	mu.Lock()
	got := strings.Join(lines, "\n")
	mu.Unlock()
	want := strings.Join([]string{
		"S: 220 mail.test ESMTP", "C: EHLO localhost", "S: 250-mail.test", "S: 250 STARTTLS",
		"C: STARTTLS", "S: 220 2.0.0 go ahead", "-: TLS handshake",
		"C: EHLO localhost", "S: 250-mail.test", "S: 250 AUTH XOAUTH2",
		"C: AUTH XOAUTH2 " + Redacted, "S: 235 2.7.0 welcome " + Redacted,
	}, "\n")
	if got != want {
		t.Errorf("transcript:\n%s\nwant:\n%s", got, want)
	}
}

// A refused token is refreshed once, and the login tried again on a new
// connection; a refusal of the refreshed one is final.
func TestRefreshOnceOnANewConnection(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv, cfg := testServer(t, func(c net.Conn, r *bufio.Reader, tc *tls.Config) {
		mu.Lock()
		conns++
		mu.Unlock()
		s := tls.Server(c, tc)
		r = bufio.NewReader(s)
		s.Write([]byte("220 mail.test ESMTP\r\n"))
		expect(t, r, "EHLO")
		s.Write([]byte("250-mail.test\r\n250 AUTH XOAUTH2\r\n"))
		expect(t, r, "AUTH XOAUTH2 ")
		s.Write([]byte("334 eyJzdGF0dXMiOiI0MDEifQ==\r\n"))
		expect(t, r, "")
		s.Write([]byte("535 5.7.8 Authentication failed\r\n"))
	})
	srv.ImplicitTLS = true
	var refreshed []string
	_, err := LoginSMTP(testwait.Context(t), &Options{
		Server: srv, TLS: cfg, User: "alice@example.test",
		Token: func(context.Context) (string, error) { return testToken, nil },
		Refresh: func(_ context.Context, stale string) (string, error) {
			refreshed = append(refreshed, stale)
			return testToken + "-fresh", nil
		},
	})
	var re *ReplyError
	if !errors.As(err, &re) || !re.Refused || re.Code != "5.7.8" || re.SMTPCode != 535 || re.Failure == nil || re.Failure.Status != "401" {
		t.Fatalf("err = %v (%+v)", err, re)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refreshed) != 1 || refreshed[0] != testToken || conns != 2 {
		t.Errorf("refreshed %q over %d connections, want the first token once over 2", refreshed, conns)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Error("the error quotes the token")
	}
}

func TestUpstreamEHLO(t *testing.T) {
	for in, want := range map[string]string{
		"EHLO a.example": "EHLO a.example",
		"HELO a.example": "EHLO a.example",
		"":               "EHLO localhost",
		"helo":           "EHLO localhost",
	} {
		if got := upstreamEHLO(in); got != want {
			t.Errorf("upstreamEHLO(%q) = %q, want %q", in, got, want)
		}
	}
}

// IMAP without SASL-IR: the initial response goes after the server's empty
// continuation, and the error challenge is answered by the SASL client
// itself (a single 0x01 for OAUTHBEARER, RFC 7628 §3.2.3), after which the
// NO is a refusal that carries the challenge.
func TestIMAPTwoStepAndErrorChallenge(t *testing.T) {
	srv, cfg := testServer(t, func(c net.Conn, r *bufio.Reader, tc *tls.Config) {
		s := tls.Server(c, tc)
		r = bufio.NewReader(s)
		s.Write([]byte("* OK [CAPABILITY IMAP4rev1 AUTH=XOAUTH2 AUTH=OAUTHBEARER] ready\r\n"))
		if l := expect(t, r, "m2 AUTHENTICATE OAUTHBEARER"); l != "m2 AUTHENTICATE OAUTHBEARER" {
			t.Errorf("initial response on the command line without SASL-IR: %q", l)
		}
		s.Write([]byte("+ \r\n"))
		expect(t, r, "bixh") // base64 of "n,a"
		s.Write([]byte("+ eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIn0=\r\n"))
		if l := expect(t, r, "AQ=="); l != "AQ==" {
			t.Errorf("answer to the error challenge: %q", l)
		}
		s.Write([]byte("m2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"))
	})
	srv.ImplicitTLS, srv.Protocol = true, provider.IMAP
	_, err := LoginIMAP(testwait.Context(t), &Options{
		Server: srv, TLS: cfg, User: "alice@example.test", SASL: "oauthbearer",
		Token: func(context.Context) (string, error) { return testToken, nil },
	})
	var re *ReplyError
	var ue *Error
	if !errors.As(err, &re) || !re.Refused || re.Code != "AUTHENTICATIONFAILED" || re.Failure == nil || re.Failure.Status != "invalid_token" {
		t.Fatalf("err = %v (%+v)", err, re)
	}
	if !errors.As(err, &ue) || ue.Phase != PhaseAuthenticate {
		t.Errorf("phase of %v, want %s", err, PhaseAuthenticate)
	}
}

// STARTTLS is required and checked: bytes after the POP3 STLS go-ahead end
// the login, and an SMTP server that does not offer STARTTLS never gets a
// STARTTLS, let alone a token.
func TestSTARTTLSRefusals(t *testing.T) {
	pop, cfg := testServer(t, func(c net.Conn, r *bufio.Reader, _ *tls.Config) {
		c.Write([]byte("+OK ready\r\n"))
		expect(t, r, "STLS")
		c.Write([]byte("+OK begin\r\n+OK injected\r\n"))
		r.ReadString('\n')
	})
	pop.Protocol = provider.POP3
	token := func(context.Context) (string, error) { t.Error("a token was asked for"); return testToken, nil }
	_, err := LoginPOP3(testwait.Context(t), &Options{Server: pop, TLS: cfg, User: "alice@example.test", Token: token})
	if !errors.Is(err, ErrBufferedBeforeTLS) {
		t.Errorf("POP3 injection: %v", err)
	}
	smtp, cfg := testServer(t, func(c net.Conn, r *bufio.Reader, _ *tls.Config) {
		c.Write([]byte("220 mail.test ESMTP\r\n"))
		expect(t, r, "EHLO localhost")
		c.Write([]byte("250-mail.test\r\n250 AUTH XOAUTH2\r\n"))
		if l, err := r.ReadString('\n'); err == nil {
			t.Errorf("the client went on with %q", l)
		}
	})
	_, err = LoginSMTP(testwait.Context(t), &Options{Server: smtp, TLS: cfg, User: "alice@example.test", Token: token})
	var ue *Error
	if !errors.Is(err, ErrNoSTARTTLS) || !errors.As(err, &ue) || ue.Phase != PhaseTLS {
		t.Errorf("SMTP without STARTTLS: %v", err)
	}
}
