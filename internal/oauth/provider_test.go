package oauth

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2"
)

const testSecret = "client-secret-s3cr3t-value"

// fakeProvider is an authorization server on loopback. It issues codes and
// tokens, checks PKCE, and records every secret it hands out or receives so
// tests can prove none leaks.
type fakeProvider struct {
	t   *testing.T
	srv *httptest.Server
	mux *http.ServeMux // tests add endpoints here

	mu        sync.Mutex
	codes     map[string]grantInfo // code → challenge, redirect
	secrets   []string             // every secret seen
	authQuery url.Values           // last authorization request
	tokenForm url.Values           // last token request body
	userAgent string
	n         int

	// Behaviour switches.
	authError   string // error= in the redirect instead of a code
	iss         string // iss= in the redirect
	rotate      bool   // refresh returns a new refresh token
	tokenStatus int    // if set, the token endpoint fails with this status…
	tokenBody   string // …and this body
	tokenHeader http.Header
	token       func(w http.ResponseWriter, form url.Values) bool // custom grant handling; true = handled
}

type grantInfo struct{ challenge, redirect string }

func newProvider(t *testing.T) *fakeProvider {
	p := &fakeProvider{t: t, codes: map[string]grantInfo{}, secrets: []string{testSecret}}
	mux := http.NewServeMux()
	p.mux = mux
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.tokenEndpoint)
	mux.HandleFunc("/revoke", p.revoke)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func (p *fakeProvider) client() *Client {
	return &Client{
		Config: oauth2.Config{
			ClientID:     "client-id",
			ClientSecret: testSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:       p.srv.URL + "/authorize",
				TokenURL:      p.srv.URL + "/token",
				DeviceAuthURL: p.srv.URL + "/device",
			},
			Scopes: []string{"https://mail.example/", "offline_access"},
		},
		RevokeURL:  p.srv.URL + "/revoke",
		AuthParams: map[string]string{"access_type": "offline"},
		LoginHint:  "user@example.com",
	}
}

func (p *fakeProvider) secret(prefix string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	s := fmt.Sprintf("%s-%d-%s", prefix, p.n, strings.Repeat("x", 8))
	p.secrets = append(p.secrets, s)
	return s
}

func (p *fakeProvider) allSecrets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.secrets...)
}

func (p *fakeProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.authQuery = q
	p.mu.Unlock()
	redirect := q.Get("redirect_uri")
	out := url.Values{"state": {q.Get("state")}}
	if p.iss != "" {
		out.Set("iss", p.iss)
	}
	if p.authError != "" {
		out.Set("error", p.authError)
		out.Set("error_description", "The user said no")
	} else {
		code := p.secret("authcode")
		p.mu.Lock()
		p.codes[code] = grantInfo{challenge: q.Get("code_challenge"), redirect: redirect}
		p.mu.Unlock()
		out.Set("code", code)
	}
	http.Redirect(w, r, redirect+"?"+out.Encode(), http.StatusFound)
}

func (p *fakeProvider) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	form := r.PostForm
	p.mu.Lock()
	p.tokenForm = form
	p.userAgent = r.UserAgent()
	for _, k := range []string{"code_verifier", "refresh_token", "device_code", "client_assertion", "assertion"} {
		if v := form.Get(k); v != "" {
			p.secrets = append(p.secrets, v)
		}
	}
	p.mu.Unlock()
	if p.tokenStatus != 0 {
		for k, v := range p.tokenHeader {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(p.tokenStatus)
		fmt.Fprint(w, p.tokenBody)
		return
	}
	if p.token != nil && p.token(w, form) {
		return
	}
	secret := form.Get("client_secret")
	if _, pw, ok := r.BasicAuth(); ok {
		secret, _ = url.QueryUnescape(pw)
	}
	if secret != testSecret {
		jsonError(w, 401, "invalid_client", "bad client secret")
		return
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		p.mu.Lock()
		g, ok := p.codes[form.Get("code")]
		delete(p.codes, form.Get("code"))
		p.mu.Unlock()
		if !ok {
			jsonError(w, 400, "invalid_grant", "unknown code")
			return
		}
		if form.Get("redirect_uri") != g.redirect {
			jsonError(w, 400, "invalid_grant", "redirect_uri mismatch")
			return
		}
		sum := sha256.Sum256([]byte(form.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			jsonError(w, 400, "invalid_grant", "PKCE verification failed")
			return
		}
		p.issue(w, true, map[string]any{"scope": "https://mail.example/ offline_access", "refresh_token_expires_in": 604799})
	case "refresh_token":
		p.issue(w, p.rotate, nil)
	default:
		jsonError(w, 400, "unsupported_grant_type", "")
	}
}

func (p *fakeProvider) issue(w http.ResponseWriter, withRefresh bool, extra map[string]any) {
	body := map[string]any{"access_token": p.secret("at"), "token_type": "Bearer", "expires_in": 3599}
	if withRefresh {
		body["refresh_token"] = p.secret("rt")
	}
	for k, v := range extra {
		body[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(body)
}

func (p *fakeProvider) revoke(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	p.mu.Lock()
	p.tokenForm = r.PostForm
	p.mu.Unlock()
	switch r.PostForm.Get("token") {
	case "":
		jsonError(w, 400, "invalid_request", "no token")
	case "gone-token":
		jsonError(w, 400, "invalid_token", "Token expired or revoked")
	case "busy-token":
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(503)
	}
}

func jsonError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// assertNoSecret fails if any secret occurs in text.
func assertNoSecret(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q:\n%s", what, s, text)
		}
	}
}
