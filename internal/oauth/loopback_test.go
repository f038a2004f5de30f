package oauth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/testwait"
)

// syncBuffer is a bytes.Buffer safe for a flow and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type visit struct {
	status int
	body   string
	err    error
}

// browser plays the user's browser: optional stray callbacks first, then the
// authorization URL, following the redirect to the loopback listener.
type browser struct {
	pages  chan visit
	strays chan visit
	stray  func(redirect string) string // URL of a stray callback, given the redirect URI
	fail   error                        // what OpenBrowser returns after starting
}

func newBrowser() *browser {
	return &browser{pages: make(chan visit, 1), strays: make(chan visit, 1)}
}

func get(u string) visit {
	resp, err := http.Get(u)
	if err != nil {
		return visit{err: err}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return visit{status: resp.StatusCode, body: string(b)}
}

func (b *browser) open(u string) error {
	go func() {
		pu, _ := url.Parse(u)
		if b.stray != nil {
			b.strays <- get(b.stray(pu.Query().Get("redirect_uri")))
		}
		b.pages <- get(u)
	}()
	return b.fail
}

func TestLoopbackLoginPKCEAndState(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	br := newBrowser()
	var out syncBuffer
	tok, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	page := <-br.pages
	if page.status != 200 || !strings.Contains(page.body, "You can close this tab") {
		t.Errorf("browser page = %d %q", page.status, page.body)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token missing parts: %v", tok)
	}
	if got := strings.Join(tok.Scopes, " "); got != "https://mail.example/ offline_access" {
		t.Errorf("scopes = %q", got)
	}
	if tok.RefreshExpiry.Before(time.Now().Add(6 * 24 * time.Hour)) {
		t.Errorf("refresh expiry %v not parsed from refresh_token_expires_in", tok.RefreshExpiry)
	}
	q := p.authQuery
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Errorf("no S256 challenge in %v", q)
	}
	if len(q.Get("state")) < 32 {
		t.Errorf("state %q too short", q.Get("state"))
	}
	for k, want := range map[string]string{"login_hint": "user@example.com", "access_type": "offline", "client_id": "client-id", "response_type": "code"} {
		if q.Get(k) != want {
			t.Errorf("%s = %q, want %q", k, q.Get(k), want)
		}
	}
	redirect := q.Get("redirect_uri")
	if !strings.HasPrefix(redirect, "http://127.0.0.1:") || !strings.HasSuffix(redirect, "/") {
		t.Errorf("redirect_uri = %q", redirect)
	}
	if p.tokenForm.Get("code_verifier") == "" {
		t.Error("no code_verifier sent")
	}
	if p.userAgent != "mailkey" {
		t.Errorf("User-Agent = %q", p.userAgent)
	}
	if !strings.Contains(out.String(), p.srv.URL+"/authorize?") {
		t.Errorf("URL not printed: %q", out.String())
	}
	// The listener is closed on return. Its port is free again, so another process may
	// listen there by now: what answers there must not be mailkey's callback server.
	u, _ := url.Parse(redirect)
	if conn, err := net.Dial("tcp", u.Host); err == nil {
		conn.Close()
		req, _ := http.NewRequestWithContext(testwait.Context(t), http.MethodGet, redirect+"?state=probe", nil)
		if resp, err := http.DefaultClient.Do(req); errors.Is(err, context.DeadlineExceeded) {
			t.Error("callback listener still accepts connections after return")
		} else if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "<title>mailkey: ") {
				t.Error("callback listener still answers after return")
			}
		}
	}
	assertNoSecret(t, "output", out.String(), p.allSecrets())
	assertNoSecret(t, "page", page.body, p.allSecrets())
}

func TestLoopbackWrongStateIgnoredThenRightAccepted(t *testing.T) {
	p := newProvider(t)
	br := newBrowser()
	br.stray = func(redirect string) string { return redirect + "?code=evil-code&state=not-the-state" }
	tok, err := p.client().LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open})
	if err != nil {
		t.Fatal(err)
	}
	if s := <-br.strays; s.status != http.StatusBadRequest || !strings.Contains(s.body, "ignored") {
		t.Errorf("stray callback answered %d %q", s.status, s.body)
	}
	if (<-br.pages).status != 200 || tok.AccessToken == "" {
		t.Error("the matching callback was not accepted")
	}
}

func TestLoopbackWrongStateOnlyTimesOut(t *testing.T) {
	p := newProvider(t)
	var stray visit
	open := func(u string) error {
		// The stray callback is answered before OpenBrowser returns, that is before the
		// flow starts its timeout: however slow the machine, the timeout cannot cut it
		// short. (A flow that took it for the real one would hold it until the test's
		// deadline, and fail.)
		pu, _ := url.Parse(u)
		req, _ := http.NewRequestWithContext(testwait.Context(t), http.MethodGet, pu.Query().Get("redirect_uri")+"?code=evil&state=wrong", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			stray.err = err
			return nil
		}
		defer resp.Body.Close()
		stray.status = resp.StatusCode
		return nil
	}
	// The flow must go on after the stray callback, so it ends by timing out.
	// The timeout is short only to keep the test quick; nothing is timed.
	_, err := p.client().LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: open, Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if stray.status != http.StatusBadRequest {
		t.Errorf("stray callback answered %d (%v)", stray.status, stray.err)
	}
}

func TestLoopbackTimeoutPrintsURL(t *testing.T) {
	p := newProvider(t)
	var out syncBuffer
	_, err := p.client().LoopbackLogin(context.Background(), LoopbackOptions{Out: &out, Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if Classify(err).Kind != Other {
		t.Errorf("timeout classified %v", Classify(err).Kind)
	}
	if !strings.Contains(out.String(), "/authorize?") {
		t.Errorf("URL not printed: %q", out.String())
	}
}

func TestLoopbackCancel(t *testing.T) {
	p := newProvider(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := p.client().LoopbackLogin(ctx, LoopbackOptions{})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestLoopbackIssuerMismatchRefused(t *testing.T) {
	p := newProvider(t)
	p.iss = "https://evil.example"
	c := p.client()
	c.Issuer = "https://issuer.example"
	br := newBrowser()
	_, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open})
	if !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want ErrIssuerMismatch", err)
	}
	if page := <-br.pages; page.status != 400 || !strings.Contains(page.body, "rejected") {
		t.Errorf("page = %d %q", page.status, page.body)
	}
	if len(p.codes) != 1 {
		t.Error("the code of a response from the wrong issuer was redeemed")
	}
}

func TestLoopbackIssuerMatchAccepted(t *testing.T) {
	p := newProvider(t)
	p.iss = "https://issuer.example"
	c := p.client()
	c.Issuer = "https://issuer.example"
	c.RequireIssuerParam = true
	br := newBrowser()
	if _, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open}); err != nil {
		t.Fatal(err)
	}
	<-br.pages
}

func TestLoopbackMissingIssRefusedWhenRequired(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	c.Issuer = "https://issuer.example"
	c.RequireIssuerParam = true
	br := newBrowser()
	_, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open})
	if !errors.Is(err, ErrMissingIssuer) {
		t.Fatalf("err = %v, want ErrMissingIssuer", err)
	}
	<-br.pages
}

func TestLoopbackProviderErrorShownAndReturned(t *testing.T) {
	p := newProvider(t)
	p.authError = "access_denied"
	br := newBrowser()
	_, err := p.client().LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open})
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("err = %v, want ErrAccessDenied", err)
	}
	e := Classify(err)
	if !e.Permanent() || e.Code != "access_denied" || e.Description != "The user said no" {
		t.Errorf("error = %+v", e)
	}
	page := <-br.pages
	if page.status != 400 || !strings.Contains(page.body, "You denied access") {
		t.Errorf("page = %d %q", page.status, page.body)
	}
}

func TestLoopbackBrowserOpenerFailureIsNotAnError(t *testing.T) {
	p := newProvider(t)
	br := newBrowser()
	br.fail = errors.New("no display")
	var out syncBuffer
	if _, err := p.client().LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open, Out: &out}); err != nil {
		t.Fatal(err)
	}
	<-br.pages
	if !strings.Contains(out.String(), "Could not open a browser (no display)") {
		t.Errorf("output = %q", out.String())
	}
}

func TestLoopbackLocalhostRedirect(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	c.RedirectHost = "localhost"
	br := newBrowser()
	if _, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open}); err != nil {
		t.Fatal(err)
	}
	<-br.pages
	if r := p.authQuery.Get("redirect_uri"); !strings.HasPrefix(r, "http://localhost:") {
		t.Errorf("redirect_uri = %q", r)
	}
}

func TestInsecureEndpointsRefused(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	c.Config.Endpoint.AuthURL = "http://login.example.com/authorize"
	opened := false
	_, err := c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: func(string) error { opened = true; return nil }})
	if !errors.Is(err, ErrInsecureEndpoint) || opened {
		t.Fatalf("err = %v (browser opened: %v), want ErrInsecureEndpoint before anything", err, opened)
	}
	c = p.client()
	c.Config.Endpoint.TokenURL = "http://login.example.com/token"
	if _, err := c.Refresh(context.Background(), "rt"); !errors.Is(err, ErrInsecureEndpoint) {
		t.Fatalf("refresh err = %v", err)
	}
	c = p.client()
	c.RedirectHost = "192.0.2.1"
	if _, err := c.PasteLogin(context.Background(), strings.NewReader("code"), io.Discard); !errors.Is(err, ErrInsecureEndpoint) {
		t.Fatalf("non-loopback redirect host: err = %v", err)
	}
	for _, ok := range []string{"https://x.example/t", "http://127.0.0.1:9/t", "http://127.8.9.1/t", "http://[::1]:80/t", "http://localhost:8080/t"} {
		if err := CheckEndpoint(ok); err != nil {
			t.Errorf("CheckEndpoint(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/t", "http://10.0.0.1/t", "ftp://127.0.0.1/", "/relative", "http://127.0.0.1.example.com/",
		"http://user:hunter2@example.com/t", "https://user:hunter2@x.example/%zz"} {
		if err := CheckEndpoint(bad); !errors.Is(err, ErrInsecureEndpoint) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("CheckEndpoint(%q) = %v (must be refused without echoing the password)", bad, err)
		}
	}
}

func TestRedirectToInsecureEndpointRefused(t *testing.T) {
	p := newProvider(t)
	p.mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://token.invalid/token", http.StatusTemporaryRedirect)
	})
	c := p.client()
	c.Config.Endpoint.TokenURL = p.srv.URL + "/moved"
	_, err := c.Refresh(context.Background(), "rt-value-1234")
	if !errors.Is(err, ErrInsecureEndpoint) {
		t.Fatalf("err = %v, want ErrInsecureEndpoint", err)
	}
}

// An ID token proves who signed in only if it answers this login's
// request: the flows send a nonce when they ask for openid, and hand it
// to the verification with the token.
func TestAuthCodeFlowsSendNonceForOpenID(t *testing.T) {
	for _, flow := range []string{"loopback", "paste"} {
		for _, openid := range []bool{false, true} {
			p := newProvider(t)
			c := p.client()
			if openid {
				c.Config.Scopes = append(c.Config.Scopes, "openid")
			}
			var tok *Token
			var err error
			if flow == "loopback" {
				br := newBrowser()
				tok, err = c.LoopbackLogin(context.Background(), LoopbackOptions{OpenBrowser: br.open, Out: io.Discard})
			} else {
				tok, _, err = paste(t, c, func(r *url.URL) string { return r.String() })
			}
			if err != nil {
				t.Fatalf("%s: %v", flow, err)
			}
			sent := p.authQuery.Get("nonce")
			switch {
			case !openid && (sent != "" || tok.Nonce != ""):
				t.Errorf("%s without openid: nonce %q sent, %q kept", flow, sent, tok.Nonce)
			case openid && (len(sent) < 32 || tok.Nonce != sent):
				t.Errorf("%s with openid: nonce %q sent, %q kept", flow, sent, tok.Nonce)
			}
		}
	}
}
