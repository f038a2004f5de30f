package check

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/sasl"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/testwait"
)

// Tokens the scripted servers tell apart. They look like real ones, so a
// leak would be found.
const (
	goodToken  = "ya29.good-token-0123456789abcdef"
	staleToken = "ya29.stale-token-0123456789abcdef"
)

// testPKI is a CA and a server certificate for 127.0.0.1 signed by it.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "check test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), KeyUsage: x509.KeyUsageCertSign,
		BasicConstraintsValid: true, IsCA: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "mail.test"}, DNSNames: []string{"mail.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &testPKI{pool: pool, server: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// script answers one connection: it gets each client line and returns the
// lines to send back ("" sends nothing); quit ends the connection.
type script func(line string) (reply []string, quit bool)

// serve runs a scripted implicit-TLS server on 127.0.0.1 and returns its
// port. greeting is sent first.
func serve(t *testing.T, pki *testPKI, greeting string, newScript func() script) int {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pki.server}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(testwait.Deadline(t)) // keeps a broken test from hanging
				br := bufio.NewReader(c)
				c.Write([]byte(greeting + "\r\n"))
				s := newScript()
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					reply, quit := s(strings.TrimRight(line, "\r\n"))
					for _, r := range reply {
						c.Write([]byte(r + "\r\n"))
					}
					if quit {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// xoauth2Token takes the token out of a base64 XOAUTH2 initial response.
func xoauth2Token(b64 string) string {
	ir, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return ""
	}
	_, tok, err := sasl.ParseXOAUTH2(ir)
	if err != nil {
		return ""
	}
	return tok
}

const xoauth2Challenge = `{"status":"401","schemes":"bearer","scope":"mail"}`

// imapScript is an IMAP server that accepts goodToken and refuses others
// with an XOAUTH2 error challenge; list is its answer to LIST.
func imapScript(list string) func() script {
	return func() script {
		pendingNO := ""
		return func(line string) ([]string, bool) {
			if pendingNO != "" { // the client's answer to the error challenge
				tag := pendingNO
				pendingNO = ""
				return []string{tag + " NO [AUTHENTICATIONFAILED] Authentication failed."}, false
			}
			tag, rest, _ := strings.Cut(line, " ")
			f := strings.Fields(rest)
			switch strings.ToUpper(f[0]) {
			case "CAPABILITY":
				return []string{"* CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2 AUTH=PLAIN", tag + " OK done"}, false
			case "AUTHENTICATE":
				if len(f) == 3 && xoauth2Token(f[2]) == goodToken {
					return []string{tag + " OK Logged in"}, false
				}
				pendingNO = tag
				return []string{"+ " + base64.StdEncoding.EncodeToString([]byte(xoauth2Challenge))}, false
			case "LIST":
				if strings.HasPrefix(list, "BAD") {
					return []string{tag + " " + list}, false
				}
				return []string{list, tag + " OK LIST done"}, false
			case "LOGOUT":
				return []string{"* BYE", tag + " OK bye"}, true
			}
			return []string{tag + " BAD unknown"}, false
		}
	}
}

func smtpScript(authReply string) func() script {
	return func() script {
		return func(line string) ([]string, bool) {
			switch f := strings.Fields(strings.ToUpper(line)); f[0] {
			case "EHLO":
				return []string{"250-mail.test", "250-AUTH LOGIN XOAUTH2", "250 SIZE 36700160"}, false
			case "AUTH":
				return []string{authReply}, false
			case "QUIT":
				return []string{"221 bye"}, true
			}
			return []string{"502 5.5.2 unknown"}, false
		}
	}
}

func pop3Script(authReply string) func() script {
	return func() script {
		return func(line string) ([]string, bool) {
			switch f := strings.Fields(strings.ToUpper(line)); f[0] {
			case "CAPA":
				return []string{"+OK", "SASL XOAUTH2", "USER", "."}, false
			case "AUTH":
				return []string{authReply}, false
			case "STAT":
				return []string{"+OK 2 320"}, false
			case "QUIT":
				return []string{"+OK bye"}, true
			}
			return []string{"-ERR unknown"}, false
		}
	}
}

// testTarget is an account on the scripted servers; the token store hands
// out tok and, when forced, goodToken.
func testTarget(pki *testPKI, servers map[provider.Protocol]int, tok string) (Target, *int) {
	refreshes := new(int)
	t := Target{
		Account: "work", Email: "alice@example.test", Provider: "generic",
		Servers: map[provider.Protocol]provider.Server{},
		TLSConfig: func(name string) (*tls.Config, error) {
			return &tls.Config{RootCAs: pki.pool, ServerName: name, MinVersion: tls.VersionTLS12}, nil
		},
		Token: func(context.Context) (*store.Record, error) {
			return &store.Record{Account: "work", AccessToken: tok, Expiry: time.Now().Add(time.Hour), Scopes: []string{"mail"}}, nil
		},
		ForceRefresh: func(_ context.Context, stale string) (*store.Record, error) {
			*refreshes++
			return &store.Record{Account: "work", AccessToken: goodToken, Expiry: time.Now().Add(time.Hour), Scopes: []string{"mail"}}, nil
		},
	}
	schemes := map[provider.Protocol]string{provider.IMAP: "imaps", provider.POP3: "pop3s", provider.SMTP: "smtps"}
	for p, port := range servers {
		t.Servers[p] = provider.Server{Scheme: schemes[p], Host: "127.0.0.1", Port: port, ImplicitTLS: true, Protocol: p}
	}
	return t, refreshes
}

func stepNamed(res *Result, name string) *Step {
	for i := range res.Steps {
		if res.Steps[i].Name == name {
			return &res.Steps[i]
		}
	}
	return nil
}

// A passing IMAP checklist, with a transcript; neither it nor the JSON
// report holds the token.
func TestRunPasses(t *testing.T) {
	pki := newPKI(t)
	port := serve(t, pki, "* OK ready", imapScript(`* LIST () "/" INBOX`))
	target, _ := testTarget(pki, map[provider.Protocol]int{provider.IMAP: port}, goodToken)
	var tr bytes.Buffer
	rep := Run(context.Background(), target, Options{Transcript: &tr})
	js, _ := json.Marshal(rep)
	if !rep.Passed || len(rep.Results) != 1 {
		t.Fatalf("report: %s", js)
	}
	var names []string
	for _, s := range rep.Results[0].Steps {
		names = append(names, s.Name+"="+string(s.Status))
	}
	if got, want := strings.Join(names, " "), "connect=ok tls=ok capabilities=ok token=ok authenticate=ok command=ok"; got != want {
		t.Errorf("steps %s, want %s", got, want)
	}
	if d := stepNamed(rep.Results[0], StepTLS).Detail; !strings.Contains(d, "certificate for mail.test, 127.0.0.1, issued by check test CA") {
		t.Errorf("tls detail: %s", d)
	}
	if d := stepNamed(rep.Results[0], StepCommand).Detail; d != "LIST: 1 mailboxes (INBOX)" {
		t.Errorf("command detail: %s", d)
	}
	if !bytes.Contains(js, []byte(`"duration_ms":`)) {
		t.Errorf("no durations in %s", js)
	}
	transcript := tr.String()
	if !strings.Contains(transcript, " AUTHENTICATE XOAUTH2 <redacted>\n") || !strings.Contains(transcript, " OK Logged in\n") {
		t.Errorf("transcript:\n%s", transcript)
	}
	assertNoSecret(t, map[string]string{"report": string(js), "transcript": transcript}, goodToken)
}

// A stale token: the server refuses it, the provider says inactive, a
// refreshed token works, and the protocol passes with a warning.
func TestRunRefreshesStaleToken(t *testing.T) {
	pki := newPKI(t)
	port := serve(t, pki, "* OK ready", imapScript(`* LIST () "/" INBOX`))
	target, refreshes := testTarget(pki, map[provider.Protocol]int{provider.IMAP: port}, staleToken)
	target.Introspect = func(_ context.Context, tok string) (*Introspection, error) {
		return &Introspection{Active: tok == goodToken}, nil
	}
	var tr bytes.Buffer
	rep := Run(context.Background(), target, Options{Transcript: &tr})
	js, _ := json.Marshal(rep)
	if !rep.Passed || *refreshes != 1 {
		t.Fatalf("refreshes %d, report: %s", *refreshes, js)
	}
	auth := stepNamed(rep.Results[0], StepAuthenticate)
	if auth.Status != StatusWarn || auth.Diagnosis == nil || auth.Diagnosis.ID != "token-inactive" {
		t.Errorf("authenticate step: %+v", auth)
	}
	if !strings.Contains(auth.Detail, `error challenge: status "401"`) {
		t.Errorf("authenticate detail: %s", auth.Detail)
	}
	if again := stepNamed(rep.Results[0], StepRetry); again == nil || again.Status != StatusOK {
		t.Errorf("second attempt: %+v", again)
	}
	assertNoSecret(t, map[string]string{"report": string(js), "transcript": tr.String()}, goodToken, staleToken)
}

// The diagnoses that need a server's exact words, end to end through Run.
func TestRunServerReplies(t *testing.T) {
	pki := newPKI(t)
	tests := []struct {
		name     string
		proto    provider.Protocol
		greeting string
		script   func() script
		step     string
		id       string
		refresh  bool // a refreshed token may help, and is tried
	}{
		{"smtp auth disabled", provider.SMTP, "220 mail.test ESMTP", smtpScript("535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant."), StepAuthenticate, "ms-smtp-auth-disabled", false},
		{"smtp 5.7.3", provider.SMTP, "220 mail.test ESMTP", smtpScript("535 5.7.3 Authentication unsuccessful"), StepAuthenticate, "ms-5.7.3", true},
		{"smtp temporary", provider.SMTP, "220 mail.test ESMTP", smtpScript("454 4.7.0 Temporary authentication failure."), StepAuthenticate, "server-temporary", false},
		{"pop3 temporary", provider.POP3, "+OK ready", pop3Script("-ERR [SYS/TEMP] Temporary authentication failure."), StepAuthenticate, "server-temporary", false},
		{"imap not connected", provider.IMAP, "* OK ready", imapScript("BAD User is authenticated but not connected."), StepCommand, "ms-not-connected", false},
		{"imap greeting refused", provider.IMAP, "* BYE too many connections", imapScript(""), StepTLS, "server-refused-connection", false},
		{"pop3 greeting refused", provider.POP3, "-ERR [SYS/TEMP] shutting down", pop3Script(""), StepTLS, "server-refused-connection", false},
		{"smtp greeting refused", provider.SMTP, "554 5.3.2 no service for you", smtpScript(""), StepTLS, "server-refused-connection", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			port := serve(t, pki, tc.greeting, tc.script)
			target, refreshes := testTarget(pki, map[provider.Protocol]int{tc.proto: port}, goodToken)
			rep := Run(context.Background(), target, Options{})
			js, _ := json.Marshal(rep)
			if rep.Passed {
				t.Fatalf("passed: %s", js)
			}
			s := rep.Results[0].Failed()
			if s == nil || s.Name != tc.step || s.Diagnosis == nil || s.Diagnosis.ID != tc.id {
				t.Fatalf("failed step %+v, want %s at %s\n%s", s, tc.id, tc.step, js)
			}
			if *refreshes != 0 && !tc.refresh {
				t.Errorf("refreshed %d times for a failure a new token cannot fix", *refreshes)
			}
			// Every step after the failure is skipped.
			after := false
			for _, st := range rep.Results[0].Steps {
				if after && st.Status != StatusSkip && st.Name != StepRetry {
					t.Errorf("step %s after the failure: %s", st.Name, st.Status)
				}
				after = after || st.Status == StatusFail
			}
		})
	}
}

// Protocols without a server are reported, not skipped silently.
func TestRunNoServer(t *testing.T) {
	target, _ := testTarget(newPKI(t), nil, goodToken)
	rep := Run(context.Background(), target, Options{Protocols: []provider.Protocol{provider.POP3}})
	if rep.Passed || rep.Results[0].Failed().Diagnosis.ID != "no-server" {
		js, _ := json.Marshal(rep)
		t.Fatalf("report: %s", js)
	}
}

// A server that never answers: the timeout ends the session and says so.
func TestRunTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close() // silent until the listener closes
		}
	}()
	port, _ := strconv.Atoi(strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:"))
	target, _ := testTarget(newPKI(t), map[provider.Protocol]int{provider.POP3: port}, goodToken)
	// The timeout bounds the connect too: a machine too slow to connect within it proves
	// nothing, and the check is repeated with a timeout four times as long, up to one that
	// no machine needs.
	for d := 300 * time.Millisecond; ; d *= 4 {
		rep := Run(context.Background(), target, Options{Timeout: d})
		s := rep.Results[0].Failed()
		if s != nil && s.Name == StepTLS && s.Diagnosis != nil && s.Diagnosis.ID == "tls-timeout" {
			return
		}
		if s == nil || s.Name != StepConnect || s.Diagnosis == nil || s.Diagnosis.ID != "connect-timeout" || d > time.Minute {
			js, _ := json.Marshal(rep)
			t.Fatalf("timeout %v: report: %s", d, js)
		}
		t.Logf("the connect took longer than %v: trying a longer timeout", d)
	}
}

// A session timeout that ends during the connect is the limit the report
// names, not the (longer) connect timeout.
func TestRunTimeoutDuringConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	target, _ := testTarget(newPKI(t), map[provider.Protocol]int{provider.POP3: port}, goodToken)
	rep := Run(context.Background(), target, Options{Timeout: time.Nanosecond}) // over before the dial starts
	s := rep.Results[0].Failed()
	if s == nil || s.Name != StepConnect || s.Diagnosis == nil || s.Diagnosis.ID != "connect-timeout" ||
		!strings.HasPrefix(s.Detail, "timed out after 1ns: ") {
		js, _ := json.Marshal(rep)
		t.Fatalf("report: %s", js)
	}
}

func assertNoSecret(t *testing.T, outputs map[string]string, secrets ...string) {
	t.Helper()
	for label, text := range outputs {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a token appears in the %s", label)
			}
			for _, mech := range []string{sasl.XOAUTH2, sasl.OAuthBearer} {
				if ir, _ := sasl.InitialResponseBase64(mech, "alice@example.test", s, "", 0); strings.Contains(text, ir[:40]) {
					t.Errorf("a %s initial response appears in the %s", mech, label)
				}
			}
		}
	}
}
