package clitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/test/e2e"
	"github.com/mailkey/mailkey/test/e2e/mailkeytest"
)

// certClient is a key and self-signed certificate for the private_key_jwt client.
type certClient struct {
	certFile, keyFile string
	jwks              []byte
}

func newCertClient(t *testing.T) certClient {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: e2e.ClientCert},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := certClient{certFile: filepath.Join(dir, "client.crt"), keyFile: filepath.Join(dir, "client.key")}
	if err := os.WriteFile(c.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.jwks, err = e2e.PublicJWKS(&key.PublicKey, "clitest"); err != nil {
		t.Fatal(err)
	}
	return c
}

// serviceAccount is an RSA key for the stack's service account (JWT bearer grant).
type serviceAccount struct {
	key  *rsa.PrivateKey
	jwks []byte
}

func newServiceAccount(t *testing.T) serviceAccount {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := e2e.PublicJWKS(&key.PublicKey, "clitest-sa")
	if err != nil {
		t.Fatal(err)
	}
	return serviceAccount{key: key, jwks: jwks}
}

// keyFile writes a key file shaped like the JSON key the Google Cloud console hands out, with
// the stack's token endpoint, and records the private key as a secret.
func (sa serviceAccount) keyFile(t *testing.T, s *e2e.Stack, leaks *mailkeytest.Leaks) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(sa.key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	lines := strings.Split(keyPEM, "\n")
	leaks.Secret("service account key", lines[len(lines)/2])
	b, err := json.MarshalIndent(map[string]string{
		"type":           "service_account",
		"project_id":     "mailkey-e2e",
		"private_key_id": "clitest-sa",
		"private_key":    keyPEM,
		"client_email":   e2e.ServiceAccountEmail,
		"client_id":      "100000000000000000001",
		"token_uri":      s.Issuer + e2e.ServiceAccountTokenPath,
	}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// reDeviceCode is the user code oidc-provider shows (charset base-20, mask ****-****).
var reDeviceCode = regexp.MustCompile(`^\s*([A-Z]{4}-[A-Z]{4})\s*$`)

// TestLoginFlows proves that every way of getting a token yields one that Dovecot accepts for
// IMAP, POP3 and submission, and that mailkey token --sasl encodes it correctly. The flows
// run in parallel, each with its own mailkey user and its own grant.
func TestLoginFlows(t *testing.T) {
	t.Parallel()
	cc := newCertClient(t)
	sa := newServiceAccount(t)
	// Built before the test's clock starts: on a cold build cache this takes a minute.
	helper := filepath.Join(t.TempDir(), "sandbox")
	build := exec.Command("go", "build", "-o", helper, "github.com/mailkey/mailkey/test/e2e/cmd/sandbox")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the sandbox: %v\n%s", err, out)
	}
	s := e2e.Start(t, e2e.WithCertClientJWKS(cc.jwks), e2e.WithServiceAccountJWKS(sa.jwks))
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"

	// finish checks the token an account got, as alice.
	finish := func(t *testing.T, m *mk) {
		t.Helper()
		tok := m.Token(ctx, acct)
		checkMail(t, ctx, s, e2e.Alice, tok)
		checkSASL(t, ctx, m, acct, e2e.Alice, tok)
	}

	t.Run("loopback", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct)
		authURL := p.authorizeURL(ctx, s)
		u, err := url.Parse(authURL)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || !strings.HasPrefix(q.Get("redirect_uri"), "http://127.0.0.1:") {
			t.Errorf("authorization URL lacks PKCE S256, state or a 127.0.0.1 redirect: %s", authURL)
		}
		redirect, err := s.Deliver(ctx, authURL, e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		leaks.Secret("authorization code", redirect.Query().Get("code"))
		if r := p.wait(); r.Code != 0 {
			t.Fatalf("mailkey login: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "valid" || !st.HasRefresh || st.Identity != e2e.Alice {
			t.Errorf("status after login: %+v", st)
		}
		finish(t, m)
	})

	// $BROWSER as a user sets it: mailkey starts the sandbox's browser helper, which signs in
	// and hands the redirect to mailkey's loopback listener.
	t.Run("loopback through $BROWSER", func(t *testing.T) {
		t.Parallel()
		browserLog := filepath.Join(t.TempDir(), "browser.log")
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		for i, kv := range m.Vars {
			if strings.HasPrefix(kv, "BROWSER=") {
				m.Vars[i] = "BROWSER=" + helper + " -browse -log " + browserLog
			}
		}
		if r := m.Run(ctx, "", "login", acct); r.Code != 0 {
			b, _ := os.ReadFile(browserLog)
			t.Fatalf("mailkey login with $BROWSER: %s\nbrowser helper: %s", r, b)
		}
		finish(t, m)
	})

	t.Run("paste", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct, "--paste")
		redirect, err := s.BrowserLogin(ctx, p.authorizeURL(ctx, s), e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatalf("browser: %v", err)
		}
		leaks.Secret("authorization code", redirect.Query().Get("code"))
		if _, err := p.stdin.Write([]byte(redirect.String() + "\n")); err != nil {
			t.Fatal(err)
		}
		if r := p.wait(); r.Code != 0 {
			t.Fatalf("mailkey login --paste: %s", r)
		}
		finish(t, m)
	})

	t.Run("device", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct, "--device", "--no-qr")
		line, _ := p.waitLine(ctx, "the user code", reDeviceCode.MatchString)
		code := reDeviceCode.FindStringSubmatch(line)[1]
		if err := s.ApproveDevice(ctx, code, e2e.Alice, e2e.AlicePassword); err != nil {
			t.Fatalf("approve: %v", err)
		}
		if r := p.wait(); r.Code != 0 {
			t.Fatalf("mailkey login --device: %s", r)
		}
		finish(t, m)
	})

	t.Run("client credentials with secret", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientDaemon, e2e.Alice, "--flow", "client_credentials",
			"--client-secret", e2e.ClientDaemonSecret, "--scope", e2e.ScopeMail)
		if st := m.status(ctx, acct); st.State != "none" {
			t.Errorf("status before the first token: %+v", st)
		}
		// The configuration holds the client secret; what prints it must not.
		m.Must(ctx, "", "config", "check")
		m.Must(ctx, "", "config", "check", "--json")
		m.Must(ctx, "", "config", "path")
		m.Must(ctx, "", "status")
		finish(t, m)
	})

	t.Run("client credentials with certificate", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientCert, e2e.Alice, "--flow", "client_credentials",
			"--certificate-file", cc.certFile, "--private-key-file", cc.keyFile, "--scope", e2e.ScopeMail)
		finish(t, m)
	})

	// A Google-style service account with domain-wide delegation: the JWT bearer grant, with
	// the mailbox as the assertion's subject and the key file's token_uri.
	t.Run("service account", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		keyFile := sa.keyFile(t, s, leaks)
		m.AddAccount(ctx, s, acct, "", e2e.Alice, "--flow", "service_account",
			"--service-account-file", keyFile, "--scope", e2e.ScopeMail)
		finish(t, m)

		// A mailbox outside the delegation: the provider's words and a hint, no token.
		m.AddAccount(ctx, s, "stranger", "", "nobody@example.test", "--flow", "service_account",
			"--service-account-file", keyFile, "--scope", e2e.ScopeMail)
		// It is not a login problem (nobody logs in to a service account), nothing is marked,
		// and the next request asks the provider again.
		for range 2 {
			r := m.Run(ctx, "", "token", "stranger")
			if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "the provider refused to issue a token: invalid_grant: Invalid email or User ID") ||
				!strings.Contains(r.Stderr, "hint: check the service account's domain-wide delegation") || strings.Contains(r.Stderr, "login") {
				t.Errorf("token for a mailbox outside the delegation:\n%s", r)
			}
			t.Logf("mailkey token for a mailbox outside the delegation:\n%s", r.Stderr)
		}
		if st := m.status(ctx, "stranger"); st.State != "none" {
			t.Errorf("status after a refusal: %+v", st)
		}
		r := m.Run(ctx, "", "test", "stranger", "--imap")
		if r.Code == 0 || !strings.Contains(r.Stdout, "✗ token") || !strings.Contains(r.Stdout, "the service account may not act for nobody@example.test") {
			t.Errorf("mailkey test for a mailbox outside the delegation:\n%s", r)
		}
	})

	t.Run("import", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		tok, err := s.AuthCodeToken(ctx, e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		leaks.Secret("refresh token", tok.RefreshToken)
		leaks.Secret("access token", tok.AccessToken)
		m.Must(ctx, tok.RefreshToken+"\n", "login", acct, "--import")
		finish(t, m)
	})
}

// TestLoginRefusals proves that mailkey refuses a redirect of another login (state), a code
// issued for another PKCE challenge, and a sign-in as the wrong person, with clear errors
// and nothing stored.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"

	noToken := func(t *testing.T, m *mk) {
		t.Helper()
		if st := m.status(ctx, acct); st.State != "none" || st.HasRefresh {
			t.Errorf("a refused login stored something: %+v", st)
		}
	}

	t.Run("state mismatch", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct, "--paste")
		redirect, err := s.BrowserLogin(ctx, p.authorizeURL(ctx, s), e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		q := redirect.Query()
		leaks.Secret("authorization code", q.Get("code"))
		q.Set("state", "another-login-state-value")
		redirect.RawQuery = q.Encode()
		p.stdin.Write([]byte(redirect.String() + "\n"))
		r := p.wait()
		if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey: error: login for account work failed") ||
			!strings.Contains(r.Stderr, "state") || !strings.Contains(r.Stderr, "mailkey: hint: ") {
			t.Fatalf("login with a foreign state: %s", r)
		}
		noToken(t, m)
	})

	t.Run("PKCE mismatch", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct, "--paste")
		// The same request (state, redirect URI) with the challenge of a verifier mailkey
		// does not have: the redirect passes every check but the token exchange.
		u, err := url.Parse(p.authorizeURL(ctx, s))
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		q.Set("code_challenge", oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier()))
		u.RawQuery = q.Encode()
		redirect, err := s.BrowserLogin(ctx, u.String(), e2e.Alice, e2e.AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		leaks.Secret("authorization code", redirect.Query().Get("code"))
		p.stdin.Write([]byte(redirect.String() + "\n"))
		r := p.wait()
		if r.Code == 0 || !strings.Contains(r.Stderr, "invalid_grant") || !strings.Contains(r.Stderr, "mailkey: hint: try again: mailkey login work") {
			t.Fatalf("login with a code for another PKCE challenge: %s", r)
		}
		noToken(t, m)
	})

	t.Run("wrong identity", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		p := m.start(ctx, "login", acct)
		redirect, err := s.Deliver(ctx, p.authorizeURL(ctx, s), e2e.Bob, e2e.BobPassword)
		if err != nil {
			t.Fatal(err)
		}
		leaks.Secret("authorization code", redirect.Query().Get("code"))
		r := p.wait()
		if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey: error: ") ||
			!strings.Contains(r.Stderr, e2e.Bob) || !strings.Contains(r.Stderr, e2e.Alice) {
			t.Fatalf("login as bob for alice's account: %s", r)
		}
		noToken(t, m)
	})

	t.Run("no login yet", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		r := m.Run(ctx, "", "token", acct)
		if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "mailkey: hint: mailkey login work") {
			t.Fatalf("token before any login: %s", r)
		}
	})
}

// TestLogout proves that mailkey logout revokes the grant at the provider (Dovecot then
// refuses the token) and forgets the tokens, and that a copy of the store whose grant was
// revoked elsewhere says it needs a login.
func TestLogout(t *testing.T) {
	t.Parallel()
	s := e2e.Start(t)
	ctx := mailkeytest.Context(t)
	leaks := mailkeytest.NewLeaks(t)
	leaks.Require("", 1)
	const acct = "work"

	t.Run("revokes and forgets", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "1s")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		tok := m.Token(ctx, acct)
		imapOK(t, ctx, s, tok)
		r := m.Must(ctx, "", "logout", acct)
		if !strings.Contains(r.Stderr, "revoked") {
			t.Errorf("logout did not say it revoked: %s", r)
		}
		imapRefused(t, ctx, s, tok)
		if st := m.status(ctx, acct); st.State != "none" || st.HasRefresh {
			t.Errorf("status after logout: %+v", st)
		}
		r = m.Run(ctx, "", "token", acct)
		if r.Code == 0 || !strings.Contains(r.Stderr, "mailkey: hint: mailkey login work") {
			t.Errorf("token after logout: %s", r)
		}
	})

	t.Run("grant revoked elsewhere", func(t *testing.T) {
		t.Parallel()
		m := newMailkey(t, leaks, "")
		m.AddAccount(ctx, s, acct, e2e.ClientPublic, e2e.Alice)
		m.On(t).Import(ctx, s, acct, e2e.Alice, e2e.AlicePassword)
		imapOK(t, ctx, s, m.Token(ctx, acct))
		other := m.clone()
		other.Must(ctx, "", "logout", acct)
		m.EditRecord(ctx, acct, mailkeytest.Due) // the next mailkey token starts a refresh
		// The stored access token has not expired, so mailkey token hands it out at once
		// and refreshes in the background, where the provider says the grant is dead.
		for m.status(ctx, acct).State != "needs_login" {
			if r := m.Run(ctx, "", "token", acct); r.Code != 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatal("the background refresh never found the revoked grant")
			case <-time.After(50 * time.Millisecond):
			}
		}
		r := m.Run(ctx, "", "token", acct)
		if r.Code == 0 || r.Stdout != "" || !strings.Contains(r.Stderr, "mailkey: error: ") ||
			!strings.Contains(r.Stderr, "needs a new login") || !strings.Contains(r.Stderr, "mailkey: hint: mailkey login work") {
			t.Fatalf("token after the grant was revoked: %s", r)
		}
		if st := m.status(ctx, acct); st.State != "needs_login" {
			t.Errorf("status after the grant was revoked: %+v", st)
		}
	})
}
