package checktest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// TestCheck runs mailkey test against one stack: passing checklists on every transport, then
// each failure the stack can produce, then (last, since it stops the provider) an outage of the
// token service.
func TestCheck(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	l := newLeaks(t)
	m := newMailkey(t, l)
	v6 := func(port int) string { return "[::1]:" + strconv.Itoa(port) }

	// Every protocol passes over STARTTLS and implicit TLS, on 127.0.0.1 and on ::1.
	t.Run("passes", func(t *testing.T) {
		m := m.on(t)
		transports := []struct{ name, imap, pop3, smtp string }{
			{"starttls", s.IMAP, s.POP3, s.Submission},
			{"tls", s.IMAPS, s.POP3S, s.Submissions},
		}
		if s.IPv6 {
			transports = append(transports,
				struct{ name, imap, pop3, smtp string }{"v6tls", "imaps://" + v6(s.IMAPSPort), "pop3s://" + v6(s.POP3SPort), "smtps://" + v6(s.SubmissionsPort)},
				struct{ name, imap, pop3, smtp string }{"v6starttls", "imap://" + v6(s.IMAPPort), "pop3://" + v6(s.POP3Port), "smtp://" + v6(s.SubmissionPort)})
		} else {
			t.Log("no IPv6 loopback on this machine: the ::1 cases are left out")
		}
		for _, tp := range transports {
			m.add(ctx, s, tp.name, e2e.Alice, "--imap", tp.imap, "--pop3", tp.pop3, "--smtp", tp.smtp, "--ca-file", s.CAFile)
			m.login(ctx, s, tp.name, e2e.Alice, e2e.AlicePassword)
			rep, r := m.test(ctx, tp.name)
			if r.Code != 0 || !rep.Passed || len(rep.Results) != 3 {
				t.Fatalf("%s: %s", tp.name, r)
			}
			for _, res := range rep.Results {
				var names []string
				for _, st := range res.Steps {
					names = append(names, st.Name)
					if st.Status != "ok" || st.Duration == nil {
						t.Errorf("%s %s: step %+v", tp.name, res.Protocol, st)
					}
				}
				want := "connect tls capabilities token authenticate command"
				if got := strings.Join(names, " "); got != want {
					t.Errorf("%s %s: steps %q, want %q", tp.name, res.Protocol, got, want)
				}
			}
		}
		// The human checklist: a line per step with a mark and a time, on stdout.
		r := m.Must(ctx, "", "test", "tls", "--imap")
		for _, want := range []string{"IMAP  imaps://", "✓ connect", "✓ tls", "certificate for localhost, 127.0.0.1, ::1", "✓ capabilities", "XOAUTH2", "✓ token", "✓ authenticate", "✓ command", "LIST: ", "passed"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("the checklist lacks %q:\n%s", want, r.Stdout)
			}
		}
		if r.Stderr != "" {
			t.Errorf("a passing test wrote to stderr:\n%s", r.Stderr)
		}
		t.Logf("mailkey test tls --imap:\n%s", r.Stdout)
	})

	// --send-to sends a real message, and --verbose shows the transcript without the token.
	t.Run("send and transcript", func(t *testing.T) {
		m := m.on(t)
		before, err := s.MessageCount(e2e.Bob, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		r := m.Must(ctx, "", "test", "starttls", "--smtp", "--imap", "--send-to", e2e.Bob, "--verbose")
		if !strings.Contains(r.Stdout, "✓ send") {
			t.Errorf("no send step:\n%s", r.Stdout)
		}
		if _, err := s.WaitMessageCount(ctx, e2e.Bob, "INBOX", before+1); err != nil {
			t.Fatalf("the test message did not arrive: %v", err)
		}
		for _, want := range []string{"mailkey: smtp: C: AUTH XOAUTH2 <redacted>", "mailkey: smtp: S: 235 ", "mailkey: imap: C: T", "AUTHENTICATE XOAUTH2 <redacted>", "mailkey: imap: S: * LIST"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("the transcript lacks %q:\n%s", want, r.Stderr)
			}
		}
		// With OAUTHBEARER too the initial response is redacted.
		m.Must(ctx, "", "add", "starttls", "--sasl", "oauthbearer")
		r = m.Must(ctx, "", "test", "starttls", "--verbose")
		for _, want := range []string{"AUTHENTICATE OAUTHBEARER <redacted>", "mailkey: smtp: C: AUTH OAUTHBEARER <redacted>",
			// POP3 over STARTTLS: before and inside TLS.
			"mailkey: pop3: C: STLS", "mailkey: pop3: -- TLS handshake", "mailkey: pop3: C: AUTH OAUTHBEARER <redacted>",
			"mailkey: pop3: S: +OK", "mailkey: pop3: C: STAT"} {
			if !strings.Contains(r.Stderr, want) {
				t.Errorf("the transcript lacks %q:\n%s", want, r.Stderr)
			}
		}
		if n := strings.Count(r.Stdout, "using OAUTHBEARER"); n != 3 {
			t.Errorf("OAUTHBEARER used for %d protocols, want 3:\n%s", n, r.Stdout)
		}
	})

	// A token the provider no longer knows while mailkey's store still thinks it valid: the
	// provider's introspection says inactive, mailkey refreshes, and the new token works.
	t.Run("expired token", func(t *testing.T) {
		m := m.on(t)
		m.add(ctx, s, "exp", e2e.Alice, "--imap", s.IMAPS, "--ca-file", s.CAFile)
		at := m.login(ctx, s, "exp", e2e.Alice, e2e.AlicePassword)
		if err := s.DropToken(at); err != nil {
			t.Fatal(err)
		}
		rep, r := m.test(ctx, "exp")
		if r.Code != 0 || !rep.Passed {
			t.Fatalf("a stale token that refreshes should pass: %s", r)
		}
		wantDiagnosis(t, rep, r, "imap", "authenticate", "token-inactive")
		if steps := rep.Results[0].Steps; steps[5].Name != "authenticate again" || steps[5].Status != "ok" {
			t.Errorf("no successful second attempt: %+v", steps)
		}
		if at2 := strings.TrimSpace(m.Must(ctx, "", "token", "exp").Stdout); at2 == at {
			t.Error("the stale token is still stored")
		} else {
			l.Secret("access token", at2)
		}
	})

	// A grant revoked elsewhere (another copy of the store logged out): the stored token is
	// refused, and refreshing fails for good.
	t.Run("revoked grant", func(t *testing.T) {
		m := m.on(t)
		m.add(ctx, s, "rev", e2e.Alice, "--imap", s.IMAPS, "--ca-file", s.CAFile)
		m.login(ctx, s, "rev", e2e.Alice, e2e.AlicePassword)
		m.Clone().Must(ctx, "", "logout", "rev")
		rep, r := m.test(ctx, "rev")
		if r.Code == 0 || rep.Passed {
			t.Fatalf("a revoked grant passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "imap", "authenticate", "grant-revoked")
		if !strings.Contains(r.Stderr, "mailkey: error: account rev: IMAP failed at authenticate") ||
			!strings.Contains(r.Stderr, "mailkey: hint: mailkey login rev") {
			t.Errorf("stderr:\n%s", r.Stderr)
		}
	})

	// The account logs in as bob with a token alice got.
	t.Run("token for another user", func(t *testing.T) {
		m := m.on(t)
		// mailkey login refuses a token for another user than the account's: log in first,
		// then change the account's address.
		m.add(ctx, s, "bob", e2e.Alice, "--imap", s.IMAP, "--smtp", s.Submission, "--ca-file", s.CAFile)
		m.login(ctx, s, "bob", e2e.Alice, e2e.AlicePassword)
		m.Must(ctx, "", "add", "bob", "--email", e2e.Bob)
		rep, r := m.test(ctx, "bob")
		if r.Code == 0 {
			t.Fatalf("a token for another user passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "imap", "authenticate", "token-wrong-user")
		wantDiagnosis(t, rep, r, "smtp", "authenticate", "token-wrong-user")
		if s := rep.diagnosed("imap"); !strings.Contains(s.Diagnosis.Cause, e2e.Alice) {
			t.Errorf("the cause does not name the token's owner: %s", s.Diagnosis.Cause)
		}
		// The human checklist says the cause and the fix under the failed step; stderr ends
		// with the error and the hint.
		r = m.Run(ctx, "", "test", "bob", "--smtp")
		if r.Code != 1 || !strings.Contains(r.Stdout, "✗ authenticate") || !strings.Contains(r.Stdout, "      cause: the token belongs to "+e2e.Alice) ||
			!strings.Contains(r.Stdout, "      fix:   log in again") || !strings.Contains(r.Stdout, "- command") {
			t.Errorf("human output:\n%s", r)
		}
		if !strings.HasPrefix(r.Stderr, "mailkey: error: account bob: SMTP failed at authenticate: the token belongs to") ||
			!strings.Contains(r.Stderr, "mailkey: hint: log in again and sign in as "+e2e.Bob) {
			t.Errorf("stderr:\n%s", r.Stderr)
		}
		t.Logf("mailkey test bob --smtp:\n%s", r)
	})

	// A token without the mail scope.
	t.Run("missing scope", func(t *testing.T) {
		m := m.on(t)
		m.add(ctx, s, "noscope", e2e.Alice, "--pop3", s.POP3S, "--ca-file", s.CAFile, "--scope", "openid", "--scope", "email")
		m.login(ctx, s, "noscope", e2e.Alice, e2e.AlicePassword, "openid", "email")
		rep, r := m.test(ctx, "noscope")
		if r.Code == 0 {
			t.Fatalf("a token without the mail scope passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "pop3", "authenticate", "token-missing-scope")
		if s := rep.diagnosed("pop3"); !strings.Contains(s.Diagnosis.Cause, "mail") {
			t.Errorf("the cause does not name the scope: %s", s.Diagnosis.Cause)
		}
	})

	// Without ca_file the stack's self-signed certificate is untrusted. No token is needed to
	// find out: the checklist stops before the token step.
	t.Run("untrusted certificate", func(t *testing.T) {
		m := m.on(t)
		m.add(ctx, s, "noca", e2e.Alice, "--imap", s.IMAPS, "--smtp", s.Submission)
		rep, r := m.test(ctx, "noca")
		if r.Code == 0 {
			t.Fatalf("an untrusted certificate passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "imap", "tls", "tls-unknown-authority")
		wantDiagnosis(t, rep, r, "smtp", "tls", "tls-unknown-authority")
		if !strings.Contains(r.Stderr, "ca_file") {
			t.Errorf("the hint does not mention ca_file:\n%s", r.Stderr)
		}
	})

	// A server whose certificate (from a CA the account trusts) names another host.
	t.Run("wrong host name", func(t *testing.T) {
		m := m.on(t)
		addr, caFile := otherNameServer(t, m.Dir)
		m.add(ctx, s, "wrongname", e2e.Alice, "--imap", "imaps://"+addr, "--ca-file", caFile)
		rep, r := m.test(ctx, "wrongname")
		if r.Code == 0 {
			t.Fatalf("a certificate for another name passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "imap", "tls", "tls-name-mismatch")
		if st := rep.diagnosed("imap"); !strings.Contains(st.Detail, "mail.other.test") {
			t.Errorf("the detail does not show the certificate's names: %s", st.Detail)
		}
	})

	// Nothing listens on the port.
	t.Run("closed port", func(t *testing.T) {
		m := m.on(t)
		addr := e2e.ClosedAddr(t) // stays closed: no other process can take the port meanwhile
		m.add(ctx, s, "closed", e2e.Alice, "--pop3", "pop3s://"+addr, "--ca-file", s.CAFile)
		rep, r := m.test(ctx, "closed")
		if r.Code == 0 {
			t.Fatalf("a closed port passed: %s", r)
		}
		wantDiagnosis(t, rep, r, "pop3", "connect", "connection-refused")
	})

	// The token service is down while Dovecot runs: mailkey hands out the stored, still valid
	// token, and Dovecot answers with a temporary failure, which is not the token's fault.
	t.Run("token service down", func(t *testing.T) {
		m := m.on(t)
		if err := s.StopOP(); err != nil {
			t.Fatal(err)
		}
		rep, r := m.test(ctx, "starttls")
		if r.Code != 75 {
			t.Errorf("exit %d, want 75 (EX_TEMPFAIL)", r.Code)
		}
		for _, p := range []string{"imap", "pop3", "smtp"} {
			wantDiagnosis(t, rep, r, p, "authenticate", "server-temporary")
		}
	})
}

// TestNoOAuth: a server offering no OAuth mechanism is diagnosed before any token is needed.
func TestNoOAuth(t *testing.T) {
	s, ctx, m := startCheck(t, e2e.WithoutOAuth())
	m.add(ctx, s, "plain", e2e.Alice, "--imap", s.IMAPS, "--pop3", s.POP3, "--smtp", s.Submissions, "--ca-file", s.CAFile)
	rep, r := m.test(ctx, "plain")
	if r.Code == 0 {
		t.Fatalf("a server without OAuth passed: %s", r)
	}
	for _, p := range []string{"imap", "pop3", "smtp"} {
		wantDiagnosis(t, rep, r, p, "capabilities", "no-oauth-mechanism")
		if st := rep.diagnosed(p); !strings.Contains(st.Diagnosis.Cause, "PLAIN") {
			t.Errorf("%s: the cause does not say what the server offers: %s", p, st.Diagnosis.Cause)
		}
	}
	// The leak check needs a token to look for: log in (the provider runs) and test again.
	m.login(ctx, s, "plain", e2e.Alice, e2e.AlicePassword)
	m.test(ctx, "plain", "--verbose")
}

// otherNameServer runs a TLS server on 127.0.0.1 whose certificate, signed by a fresh test CA,
// names only mail.other.test. It writes the CA's PEM file into dir and returns the server's
// address and the file.
func otherNameServer(t *testing.T, dir string) (string, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mailkey test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "mail.other.test"},
		DNSNames: []string{"mail.other.test"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
				if c.(*tls.Conn).Handshake() == nil {
					fmt.Fprint(c, "* OK not a real server\r\n")
				}
			}()
		}
	}()
	return ln.Addr().String(), caFile
}
