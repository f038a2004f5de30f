package e2e

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailkey/mailkey/internal/testwait"
)

// testContext bounds a test by its deadline only (go test -timeout); nothing asserts on time.
func testContext(t *testing.T) context.Context { return testwait.Context(t) }

// mustToken is AuthCodeToken that fails the test on error.
func mustToken(t *testing.T, ctx context.Context, s *Stack, user, password string, scopes ...string) *oauth2.Token {
	t.Helper()
	tok, err := s.AuthCodeToken(ctx, user, password, scopes...)
	if err != nil {
		t.Fatalf("AuthCodeToken(%s): %v", user, err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("AuthCodeToken(%s): token without access or refresh token", user)
	}
	return tok
}

type mailFunc func(ctx context.Context, addr string, mode TLSMode, s *Stack, user, token, mech string) error

var protocols = []struct {
	name       string
	login      mailFunc
	plain, tls func(*Stack) int
}{
	{"imap", func(ctx context.Context, addr string, m TLSMode, s *Stack, u, tok, mech string) error {
		return IMAPLogin(ctx, addr, m, s.TLSConfig(), u, tok, mech)
	}, func(s *Stack) int { return s.IMAPPort }, func(s *Stack) int { return s.IMAPSPort }},
	{"pop3", func(ctx context.Context, addr string, m TLSMode, s *Stack, u, tok, mech string) error {
		return POP3Login(ctx, addr, m, s.TLSConfig(), u, tok, mech)
	}, func(s *Stack) int { return s.POP3Port }, func(s *Stack) int { return s.POP3SPort }},
	{"submission", func(ctx context.Context, addr string, m TLSMode, s *Stack, u, tok, mech string) error {
		return SubmissionSend(ctx, addr, m, s.TLSConfig(), u, tok, mech, "", nil)
	}, func(s *Stack) int { return s.SubmissionPort }, func(s *Stack) int { return s.SubmissionsPort }},
}

// listener is a loopback redirect_uri receiver, like the one a native app opens.
type listener struct {
	URL string
	got chan url.Values
}

func newListener(t *testing.T) *listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &listener{URL: "http://" + l.Addr().String() + "/", got: make(chan url.Values, 1)}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case ln.got <- r.URL.Query():
		default:
		}
		fmt.Fprintln(w, "done")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ln
}

func (l *listener) wait(t *testing.T, ctx context.Context) url.Values {
	t.Helper()
	select {
	case q := <-l.got:
		return q
	case <-ctx.Done():
		t.Fatal("loopback listener got no redirect")
		return nil
	}
}

// clientAssertion signs an RFC 7523 client authentication JWT (RS256).
func clientAssertion(t *testing.T, key *rsa.PrivateKey, kid, clientID, aud string) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now().Unix()
	signing := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid}) + "." +
		enc(map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": randomString(), "iat": now, "exp": now + 120})
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// assertNoSecret fails when text contains one of the secrets.
func assertNoSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret", what)
		}
	}
}

func TestStack(t *testing.T) {
	t.Parallel()
	certKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwks, err := PublicJWKS(&certKey.PublicKey, "k1")
	if err != nil {
		t.Fatal(err)
	}
	const bulk = 25
	s := Start(t, WithCertClientJWKS(jwks), WithBulkMailbox(bulk))
	ctx := testContext(t)
	tok := mustToken(t, ctx, s, Alice, AlicePassword)
	var secrets []string // every token and password seen, for the log check at the end
	var secretsMu sync.Mutex
	addSecret := func(v ...string) {
		secretsMu.Lock()
		secrets = append(secrets, v...)
		secretsMu.Unlock()
	}
	addSecret(tok.AccessToken, tok.RefreshToken, AlicePassword)

	t.Run("ports", func(t *testing.T) {
		if !strings.HasPrefix(s.Issuer, "http://127.0.0.1:") || s.IMAP != "imap://"+Loopback(s.IMAPPort) ||
			s.Submissions != "smtps://"+Loopback(s.SubmissionsPort) {
			t.Errorf("issuer %s, IMAP %s, submissions %s", s.Issuer, s.IMAP, s.Submissions)
		}
		for _, p := range []int{s.IMAPPort, s.POP3Port, s.SubmissionPort} {
			if p == 10143 || p == 10110 || p == 10587 {
				t.Errorf("fixed port %d used", p)
			}
		}
	})

	t.Run("login", func(t *testing.T) {
		for _, p := range protocols {
			for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
				if err := p.login(ctx, Loopback(p.plain(s)), Plain, s, Alice, tok.AccessToken, mech); err != nil {
					t.Errorf("%s %s plain: %v", p.name, mech, err)
				}
			}
			if err := p.login(ctx, Loopback(p.plain(s)), StartTLS, s, Alice, tok.AccessToken, XOAUTH2); err != nil {
				t.Errorf("%s XOAUTH2 STARTTLS: %v", p.name, err)
			}
			if err := p.login(ctx, Loopback(p.tls(s)), ImplicitTLS, s, Alice, tok.AccessToken, OAUTHBEARER); err != nil {
				t.Errorf("%s OAUTHBEARER implicit TLS: %v", p.name, err)
			}
		}
		if s.IPv6 {
			if err := IMAPLogin(ctx, net.JoinHostPort("::1", fmt.Sprint(s.IMAPPort)), Plain, nil, Alice, tok.AccessToken, XOAUTH2); err != nil {
				t.Errorf("imap over ::1: %v", err)
			}
		}
	})

	t.Run("bad token refused", func(t *testing.T) {
		const bad = "not-a-valid-token-0123456789"
		for _, p := range protocols {
			for _, c := range []struct{ user, token, mech string }{
				{Alice, bad, XOAUTH2},
				{Alice, bad, OAUTHBEARER},
				{Bob, tok.AccessToken, XOAUTH2}, // a good token for someone else
			} {
				err := p.login(ctx, Loopback(p.plain(s)), Plain, s, c.user, c.token, c.mech)
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Temporary {
					t.Errorf("%s %s as %s: got %v, want a permanent *AuthError", p.name, c.mech, c.user, err)
					continue
				}
				assertNoSecret(t, "AuthError", err.Error(), c.token)
			}
		}
	})

	// Alice may open the shared mailbox with her own token, as a delegate with Full Access;
	// Bob's token is refused for it.
	t.Run("shared mailbox", func(t *testing.T) {
		bobs := mustToken(t, ctx, s, Bob, BobPassword)
		for _, p := range protocols {
			for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
				if err := p.login(ctx, Loopback(p.plain(s)), Plain, s, Shared, tok.AccessToken, mech); err != nil {
					t.Errorf("%s %s as %s with alice's token: %v", p.name, mech, Shared, err)
				}
				err := p.login(ctx, Loopback(p.plain(s)), Plain, s, Shared, bobs.AccessToken, mech)
				var ae *AuthError
				if !errors.As(err, &ae) || ae.Temporary {
					t.Errorf("%s %s as %s with bob's token: got %v, want a permanent *AuthError", p.name, mech, Shared, err)
				}
			}
		}
	})

	t.Run("submission delivers to bob", func(t *testing.T) {
		before, err := s.MessageCount(Bob, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		msg := NewMessage(Alice, Bob, "e2e submission", "hello\n.leading dot\n")
		if err := SubmissionSend(ctx, Loopback(s.SubmissionPort), Plain, nil, Alice, tok.AccessToken, XOAUTH2, Bob, msg); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WaitMessageCount(ctx, Bob, "INBOX", before+1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("bulk mailbox", func(t *testing.T) {
		n, err := s.MessageCount(Carol, "INBOX")
		if err != nil || n != bulk {
			t.Fatalf("carol INBOX: %d messages, %v; want %d", n, err, bulk)
		}
	})

	t.Run("device flow", func(t *testing.T) {
		cfg := s.OAuth2Config(ClientPublic, "", "", DefaultScopes...)
		octx := s.Context(ctx)
		byURI, err := cfg.DeviceAuth(octx)
		if err != nil {
			t.Fatal(err)
		}
		byCode, err := cfg.DeviceAuth(octx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.ApproveDevice(ctx, byURI.VerificationURIComplete, Alice, AlicePassword); err != nil {
			t.Fatalf("approve by verification_uri_complete: %v", err)
		}
		if err := s.ApproveDevice(ctx, byCode.UserCode, Bob, BobPassword); err != nil {
			t.Fatalf("approve by user code: %v", err)
		}
		var wg sync.WaitGroup
		for _, c := range []struct {
			da   *oauth2.DeviceAuthResponse
			user string
		}{{byURI, Alice}, {byCode, Bob}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dt, err := cfg.DeviceAccessToken(octx, c.da)
				if err != nil {
					t.Errorf("device token for %s: %v", c.user, err)
					return
				}
				addSecret(dt.AccessToken, dt.RefreshToken)
				if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, c.user, dt.AccessToken, XOAUTH2); err != nil {
					t.Errorf("IMAP with device token for %s: %v", c.user, err)
				}
			}()
		}
		wg.Wait()
		if err := s.ApproveDevice(ctx, "BCDF-GHJK", Alice, AlicePassword); !errors.Is(err, ErrUnexpectedPage) {
			t.Errorf("unknown user code: got %v, want ErrUnexpectedPage", err)
		}
	})

	t.Run("deliver to loopback listener", func(t *testing.T) {
		ln := newListener(t)
		cfg := s.OAuth2Config(ClientConfidential, ClientConfidentialSecret, ln.URL, DefaultScopes...)
		v := oauth2.GenerateVerifier()
		if _, err := s.Deliver(ctx, cfg.AuthCodeURL("st-1", oauth2.S256ChallengeOption(v)), Bob, BobPassword); err != nil {
			t.Fatal(err)
		}
		q := ln.wait(t, ctx)
		if q.Get("state") != "st-1" || q.Get("code") == "" || q.Get("iss") != s.Issuer {
			t.Fatalf("listener got state %q iss %q, code set: %v", q.Get("state"), q.Get("iss"), q.Get("code") != "")
		}
		bt, err := cfg.Exchange(s.Context(ctx), q.Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		addSecret(bt.AccessToken, bt.RefreshToken)
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Bob, bt.AccessToken, OAUTHBEARER); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("deny", func(t *testing.T) {
		ln := newListener(t)
		cfg := s.OAuth2Config(ClientPublic, "", ln.URL, DefaultScopes...)
		u, err := s.Deny(ctx, cfg.AuthCodeURL("st-2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), Alice, AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		q := ln.wait(t, ctx)
		if q.Get("error") != "access_denied" || q.Get("state") != "st-2" || u.Query().Get("error") != "access_denied" {
			t.Fatalf("listener got %v", q)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const pw = "wrong-password-0xdeadbeef"
		_, err := s.AuthCodeToken(ctx, Alice, pw)
		if !errors.Is(err, ErrLoginRejected) {
			t.Fatalf("got %v, want ErrLoginRejected", err)
		}
		assertNoSecret(t, "login error", err.Error(), pw)
	})

	t.Run("deliver error hides the code", func(t *testing.T) {
		cfg := s.OAuth2Config(ClientPublic, "", "http://"+ClosedAddr(t)+"/", DefaultScopes...) // nothing listens there
		authURL := cfg.AuthCodeURL("st-3", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		u, err := s.BrowserLogin(ctx, authURL, Alice, AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		code := u.Query().Get("code")
		if code == "" {
			t.Fatal("no code in the redirect")
		}
		if err := s.deliver(ctx, u); err == nil {
			t.Fatal("deliver to a closed port succeeded")
		} else {
			assertNoSecret(t, "deliver error", err.Error(), code)
		}
	})

	t.Run("private_key_jwt client credentials", func(t *testing.T) {
		form := url.Values{
			"grant_type":            {"client_credentials"},
			"scope":                 {ScopeMail},
			"client_id":             {ClientCert},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, certKey, "k1", ClientCert, s.Endpoint().TokenURL)},
		}
		resp, err := s.HTTPClient().PostForm(s.Endpoint().TokenURL, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("token endpoint: HTTP %d, error %q, %v", resp.StatusCode, tr.Error, err)
		}
		addSecret(tr.AccessToken)
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, CertMailbox, tr.AccessToken, XOAUTH2); err != nil {
			t.Errorf("IMAP as %s: %v", CertMailbox, err)
		}
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Bob, tr.AccessToken, XOAUTH2); err == nil {
			t.Error("the mail-cert token opened bob's mailbox")
		}
	})

	t.Run("secret client credentials", func(t *testing.T) {
		cc := clientcredentials.Config{ClientID: ClientDaemon, ClientSecret: ClientDaemonSecret,
			TokenURL: s.Endpoint().TokenURL, Scopes: []string{ScopeMail}}
		dt, err := cc.Token(s.Context(ctx))
		if err != nil {
			t.Fatal(err)
		}
		addSecret(dt.AccessToken)
		if err := POP3Login(ctx, Loopback(s.POP3Port), Plain, nil, DaemonMailbox, dt.AccessToken, XOAUTH2); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("token endpoint outage", func(t *testing.T) {
		ot := mustToken(t, ctx, s, Alice, AlicePassword)
		addSecret(ot.AccessToken, ot.RefreshToken)
		cfg := s.OAuth2Config(ClientPublic, "", "")
		refresh := func() (*oauth2.Token, error) {
			return cfg.TokenSource(s.Context(ctx), &oauth2.Token{RefreshToken: ot.RefreshToken}).Token()
		}
		if err := s.FailTokenEndpoint(2); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			_, err := refresh()
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != http.StatusInternalServerError {
				t.Fatalf("refresh %d during outage: got %v, want HTTP 500", i, err)
			}
		}
		nt, err := refresh()
		if err != nil {
			t.Fatalf("refresh after outage: %v", err)
		}
		addSecret(nt.AccessToken, nt.RefreshToken)
	})

	t.Run("token endpoint controls", func(t *testing.T) {
		ot := mustToken(t, ctx, s, Carol, CarolPassword)
		addSecret(ot.AccessToken, ot.RefreshToken)
		cfg := s.OAuth2Config(ClientPublic, "", "")
		refresh := func(rt string) (*oauth2.Token, error) {
			return cfg.TokenSource(s.Context(ctx), &oauth2.Token{RefreshToken: rt}).Token()
		}
		if _, err := s.TokenStats(true); err != nil {
			t.Fatal(err)
		}
		if err := s.FailTokenEndpointWith(1, http.StatusUnauthorized, "invalid_client"); err != nil {
			t.Fatal(err)
		}
		_, err := refresh(ot.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized || re.ErrorCode != "invalid_client" {
			t.Fatalf("refresh during injected invalid_client: %v", err)
		}

		// A delayed answer: the refresh token rotates at once, the answer comes late. A client
		// that gave up has lost the new token, and the old one is spent.
		if err := s.DelayTokenEndpoint(time.Hour, 1, false); err != nil {
			t.Fatal(err)
		}
		short, cancel := context.WithCancel(ctx)
		hc := &http.Client{Transport: s.client.Transport}
		done := make(chan error, 1)
		go func() {
			_, err := cfg.TokenSource(context.WithValue(short, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: ot.RefreshToken}).Token()
			done <- err
		}()
		// Wait until the provider has handled the request, then give up on it.
		for {
			st, err := s.TokenStats(false)
			if err != nil {
				t.Fatal(err)
			}
			if st["refresh_token.success"] == 1 {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("delayed refresh returned early: %v", err)
			case <-ctx.Done():
				t.Fatal("the provider did not handle the delayed refresh")
			case <-time.After(20 * time.Millisecond):
			}
		}
		cancel()
		if err := <-done; err == nil {
			t.Fatal("a cancelled delayed refresh succeeded")
		}
		if _, err := refresh(ot.RefreshToken); err == nil {
			t.Fatal("the refresh token survived its rotation")
		}
		st, err := s.TokenStats(true)
		if err != nil {
			t.Fatal(err)
		}
		if st["injected.invalid_client"] != 1 || st["refresh_token.success"] != 1 || st["refresh_token.error.invalid_grant"] != 1 {
			t.Errorf("stats = %v", st)
		}
		if st, _ := s.TokenStats(false); len(st) != 0 {
			t.Errorf("stats after reset = %v", st)
		}
	})

	t.Run("drop token and ttl", func(t *testing.T) {
		// A lifetime unlike the default, and long: the token must not expire (and be
		// forgotten by the provider) before DropToken, however slow the machine.
		if err := s.SetTTL(7*time.Minute, 0); err != nil {
			t.Fatal(err)
		}
		dt := mustToken(t, ctx, s, Bob, BobPassword)
		addSecret(dt.AccessToken, dt.RefreshToken)
		if err := s.SetTTL(DefaultAccessTokenTTL, 0); err != nil {
			t.Fatal(err)
		}
		if dt.ExpiresIn != 420 {
			t.Errorf("expires_in = %d after SetTTL(7m)", dt.ExpiresIn)
		}
		if err := s.DropToken(dt.AccessToken); err != nil {
			t.Fatal(err)
		}
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Bob, dt.AccessToken, XOAUTH2); err == nil {
			t.Error("dropped access token still logs in")
		}
		cfg := s.OAuth2Config(ClientPublic, "", "")
		nt, err := cfg.TokenSource(s.Context(ctx), &oauth2.Token{RefreshToken: dt.RefreshToken}).Token()
		if err != nil {
			t.Fatalf("refresh after drop: %v", err)
		}
		addSecret(nt.AccessToken, nt.RefreshToken)
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Bob, nt.AccessToken, XOAUTH2); err != nil {
			t.Errorf("refreshed token: %v", err)
		}
		err = s.DropToken("no-such-token-0123")
		if !errors.Is(err, ErrUnknownToken) {
			t.Errorf("DropToken(unknown) = %v, want ErrUnknownToken", err)
		}
	})

	// last: a restart forgets every token
	t.Run("provider restart", func(t *testing.T) {
		if err := s.StopOP(); err != nil {
			t.Fatal(err)
		}
		err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Alice, tok.AccessToken, XOAUTH2)
		var ae *AuthError
		if !errors.As(err, &ae) || !ae.Temporary {
			t.Errorf("login with the provider down: got %v, want a temporary *AuthError", err)
		}
		if err := s.StartOP(); err != nil {
			t.Fatal(err)
		}
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Alice, tok.AccessToken, XOAUTH2); !errors.As(err, &ae) || ae.Temporary {
			t.Errorf("token from before the restart: got %v, want a permanent *AuthError", err)
		}
		nt := mustToken(t, ctx, s, Alice, AlicePassword)
		addSecret(nt.AccessToken, nt.RefreshToken)
		if err := IMAPLogin(ctx, Loopback(s.IMAPPort), Plain, nil, Alice, nt.AccessToken, XOAUTH2); err != nil {
			t.Errorf("new token after restart: %v", err)
		}
	})

	t.Run("logs hold no secrets", func(t *testing.T) {
		secretsMu.Lock()
		defer secretsMu.Unlock()
		assertNoSecret(t, "stack logs", s.LogTails()+s.DovecotLog(), secrets...)
	})
}

func TestStackWithoutOAuth(t *testing.T) {
	t.Parallel()
	s := Start(t, WithoutOAuth(), WithAutoConsent(), WithAccessTokenTTL(30*time.Second))
	ctx := testContext(t)

	caps, err := IMAPCapabilities(ctx, Loopback(s.IMAPPort), Plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(caps, "AUTH=XOAUTH2") || slices.Contains(caps, "AUTH=OAUTHBEARER") || !slices.Contains(caps, "AUTH=PLAIN") {
		t.Errorf("capabilities %v: want AUTH=PLAIN and no OAuth mechanism", caps)
	}
	// auto consent: the scripted browser sees only the login page
	tok := mustToken(t, ctx, s, Carol, CarolPassword)
	if tok.ExpiresIn != 30 {
		t.Errorf("expires_in = %d, want 30 (WithAccessTokenTTL)", tok.ExpiresIn)
	}
	err = IMAPLogin(ctx, Loopback(s.IMAPSPort), ImplicitTLS, s.TLSConfig(), Carol, tok.AccessToken, XOAUTH2)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("XOAUTH2 on a server without OAuth: got %v, want *AuthError", err)
	}
}

// recordTB stands in for testing.T to observe Start's skip-or-fail decision.
type recordTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordTB) Helper()                       {}
func (r *recordTB) Skipf(format string, a ...any) { r.skipped = fmt.Sprintf(format, a...) }
func (r *recordTB) Fatalf(format string, a ...any) {
	r.fatal = fmt.Sprintf(format, a...)
}

func TestStartWithoutPrograms(t *testing.T) {
	t.Setenv("PATH", t.TempDir())

	t.Setenv("MAILKEY_E2E", "")
	r := &recordTB{TB: t}
	if s := Start(r); s != nil || r.skipped == "" || r.fatal != "" {
		t.Fatalf("without MAILKEY_E2E: stack %v, skipped %q, fatal %q; want a skip", s, r.skipped, r.fatal)
	}
	if !strings.Contains(r.skipped, "install-deps.sh") || !strings.Contains(r.skipped, "dovecot") {
		t.Errorf("skip message %q does not name the install command and the missing program", r.skipped)
	}

	t.Setenv("MAILKEY_E2E", "1")
	r = &recordTB{TB: t}
	if s := Start(r); s != nil || r.fatal == "" || r.skipped != "" {
		t.Fatalf("with MAILKEY_E2E=1: stack %v, skipped %q, fatal %q; want a failure", s, r.skipped, r.fatal)
	}
}

func TestParsePage(t *testing.T) {
	body := `<form id="op.deviceInputForm" novalidate method="post" action="/device">
  <input type="hidden" name="xsrf" value="a&amp;b"/>
  <input type="text" name="user_code" placeholder="Enter code" onfocus="this.select(); this.onfocus = undefined;" autofocus></input>
  </form><p id="error">bad &lt;code&gt;</p><p>code <code id="user_code">BCDF-GHJK</code></p>`
	p := parsePage(400, body)
	f := p.form("op.deviceInputForm")
	if f == nil || f.action != "/device" {
		t.Fatalf("form not found: %+v", p.forms)
	}
	if v := f.values(); v.Get("xsrf") != "a&b" || !v.Has("user_code") {
		t.Errorf("fields %v", v)
	}
	if !p.hasID("error") || !strings.Contains(p.summary(), "bad <code>") || strings.Contains(p.summary(), "BCDF-GHJK") {
		t.Errorf("summary %q", p.summary())
	}
}

func TestDotStuff(t *testing.T) {
	got := dotStuff([]byte("a\n.b\r\n..c\n"))
	if want := "a\r\n..b\r\n...c\r\n"; got != want {
		t.Errorf("dotStuff = %q, want %q", got, want)
	}
}

// TestStackSingleMechanisms: the single-mechanism instances offer and accept only their OAuth
// mechanism, and Postfix's submission service logs users in through Dovecot's auth except
// SMTPAuthDisabled, whom it answers as Exchange Online does.
func TestStackSingleMechanisms(t *testing.T) {
	t.Parallel()
	s := Start(t, WithSingleMechanismServers(), WithAutoConsent())
	ctx := testContext(t)
	tok := mustToken(t, ctx, s, Alice, AlicePassword)
	for _, c := range []struct {
		l            *Listeners
		offered, not string
	}{{s.XOAUTH2Only, XOAUTH2, OAUTHBEARER}, {s.OAuthBearerOnly, OAUTHBEARER, XOAUTH2}} {
		caps, err := IMAPCapabilities(ctx, Loopback(c.l.IMAPPort), Plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(caps, "AUTH="+c.offered) || slices.Contains(caps, "AUTH="+c.not) {
			t.Errorf("%s-only capabilities %v", c.offered, caps)
		}
		for _, p := range protocols {
			port := p.plain(&Stack{Listeners: *c.l})
			if err := p.login(ctx, Loopback(port), StartTLS, s, Alice, tok.AccessToken, c.offered); err != nil {
				t.Errorf("%s %s on the %s-only instance: %v", p.name, c.offered, c.offered, err)
			}
			var ae *AuthError
			if err := p.login(ctx, Loopback(port), StartTLS, s, Alice, tok.AccessToken, c.not); !errors.As(err, &ae) {
				t.Errorf("%s %s on the %s-only instance: got %v, want *AuthError", p.name, c.not, c.offered, err)
			}
		}
	}

	for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
		if err := SubmissionSend(ctx, Loopback(s.PostfixSubmissionPort), StartTLS, s.TLSConfig(), Alice, tok.AccessToken, mech, "", nil); err != nil {
			t.Errorf("Postfix submission, %s: %v", mech, err)
		}
	}
	ct := mustToken(t, ctx, s, SMTPAuthDisabled, CarolPassword)
	for _, mech := range []string{XOAUTH2, OAUTHBEARER} {
		err := SubmissionSend(ctx, Loopback(s.PostfixSubmissionPort), StartTLS, s.TLSConfig(), SMTPAuthDisabled, ct.AccessToken, mech, "", nil)
		var ae *AuthError
		if !errors.As(err, &ae) || !strings.HasPrefix(ae.Reply, "535 5.7.139 ") || !strings.Contains(ae.Reply, SMTPAuthDisabledText) {
			t.Errorf("Postfix submission, %s for %s: got %v, want 535 5.7.139 … %s", mech, SMTPAuthDisabled, err, SMTPAuthDisabledText)
		}
		// Dovecot's own submission lets the mailbox in.
		if err := SubmissionSend(ctx, Loopback(s.SubmissionPort), StartTLS, s.TLSConfig(), SMTPAuthDisabled, ct.AccessToken, mech, "", nil); err != nil {
			t.Errorf("Dovecot submission, %s for %s: %v", mech, SMTPAuthDisabled, err)
		}
	}
}
