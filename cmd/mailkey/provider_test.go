package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// The OAuth client the stories register with the provider: mailkey add … --client-id
// mailkey-stories --client-secret s3cret-of-the-client.
const (
	storyClientID     = "mailkey-stories"
	storyClientSecret = "s3cret-of-the-client"
)

// fakeProvider is an OAuth 2.0 authorization server on loopback for the stories. It
// approves every authorization request that carries a state and whose redirect is a
// loopback address (RFC 8252 §7.3), checks PKCE S256 (RFC 7636 §4.6) and the client's
// credentials, issues access tokens (mkat-N-…) and refresh tokens (mkrt-N-…), rotates a
// refresh token on every use, and revokes tokens (RFC 7009). Authorization codes read
// mkcode-…, so a story can tell each secret apart in what mailkey prints. It notes every
// request it answers, without secrets, for the provider log command.
type fakeProvider struct {
	srv *httptest.Server

	mu      sync.Mutex
	down    bool                 // answer 503 to everything
	issued  int                  // token responses so far
	codes   map[string]authGrant // authorization codes not yet redeemed
	refresh map[string]bool      // refresh tokens issued, true while current
	access  map[string]bool      // access tokens issued, true until revoked
	log     []string
}

// authGrant is what an authorization code stands for.
type authGrant struct {
	redirect, challenge string
}

// providerCmd is the script command that drives the story's provider:
//
//	provider start   start it and set $PROVIDER to its URL (it stops when the story ends)
//	provider down    answer 503 to every request from now on
//	provider log     print the requests answered so far, one a line
func providerCmd(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: provider start|down|log")
	}
	p := ts.Value(providerKey{}).(*fakeProvider)
	if args[0] != "start" && p.srv == nil {
		ts.Fatalf("provider %s: run provider start first", args[0])
	}
	switch args[0] {
	case "start":
		if p.srv != nil {
			ts.Fatalf("provider start: already started")
		}
		p.codes, p.refresh, p.access = map[string]authGrant{}, map[string]bool{}, map[string]bool{}
		p.srv = httptest.NewServer(p)
		ts.Defer(p.srv.Close)
		ts.Setenv("PROVIDER", p.srv.URL)
	case "down":
		p.mu.Lock()
		p.down = true
		p.mu.Unlock()
	case "log":
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, l := range p.log {
			fmt.Fprintln(ts.Stdout(), l)
		}
	default:
		ts.Fatalf("usage: provider start|down|log")
	}
}

// providerKey holds each story's *fakeProvider in testscript.Env.Values.
type providerKey struct{}

func (p *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var serve func(http.ResponseWriter, *http.Request)
	var what string // the grant type or the kind of token, for the log
	switch r.URL.Path {
	case "/authorize":
		serve = p.authorize
	case "/token":
		serve, what = p.token, r.PostFormValue("grant_type")
	case "/revoke":
		serve, what = p.revoke, r.PostFormValue("token_type_hint")
	default:
		http.NotFound(w, r)
		return
	}
	switch {
	case p.down:
		p.note(r.URL.Path, what, "503")
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	case r.URL.Path != "/authorize" && !clientAuthenticated(r):
		p.note(r.URL.Path, what, "invalid_client")
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
	default:
		serve(w, r)
	}
}

// note records one answered request: the endpoint, what was asked and the outcome.
func (p *fakeProvider) note(path, what, outcome string) {
	line := strings.TrimPrefix(path, "/")
	if what != "" {
		line += " " + what
	}
	p.log = append(p.log, line+": "+outcome)
}

// authorize approves the request at once, as a user clicking "Allow" would, and redirects
// back with a code (RFC 6749 §4.1.2).
func (p *fakeProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case q.Get("response_type") != "code", q.Get("client_id") != storyClientID:
		p.note(r.URL.Path, "", "bad request")
		http.Error(w, "unknown client or response type", http.StatusBadRequest)
		return
	case err != nil || redirect.Scheme != "http" || !isLoopback(redirect.Hostname()):
		p.note(r.URL.Path, "", "bad redirect")
		http.Error(w, "redirect_uri must be a loopback http URL", http.StatusBadRequest)
		return
	case q.Get("state") == "", q.Get("code_challenge_method") != "S256", q.Get("code_challenge") == "":
		p.note(r.URL.Path, "", "no state or PKCE")
		http.Error(w, "state and an S256 code challenge are required", http.StatusBadRequest)
		return
	}
	code := "mkcode-" + rand.Text()
	p.codes[code] = authGrant{redirect: redirect.String(), challenge: q.Get("code_challenge")}
	back := redirect.Query()
	back.Set("code", code)
	back.Set("state", q.Get("state"))
	redirect.RawQuery = back.Encode()
	p.note(r.URL.Path, "", "approved")
	http.Redirect(w, r, redirect.String(), http.StatusFound)
}

// token answers the authorization_code and refresh_token grants (RFC 6749 §4.1.3, §6).
func (p *fakeProvider) token(w http.ResponseWriter, r *http.Request) {
	grant := r.PostFormValue("grant_type")
	switch grant {
	case "authorization_code":
		code := r.PostFormValue("code")
		g, ok := p.codes[code]
		delete(p.codes, code)
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		switch {
		case !ok:
			p.note(r.URL.Path, grant, "invalid_grant")
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the authorization code is unknown or was used")
			return
		case r.PostFormValue("redirect_uri") != g.redirect, base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge:
			p.note(r.URL.Path, grant, "invalid_grant")
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri or code_verifier does not match")
			return
		}
	case "refresh_token":
		rt := r.PostFormValue("refresh_token")
		if !p.refresh[rt] {
			p.note(r.URL.Path, grant, "invalid_grant")
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the refresh token is unknown, replaced or revoked")
			return
		}
		p.refresh[rt] = false // rotated
	default:
		p.note(r.URL.Path, grant, "unsupported_grant_type")
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return
	}
	p.issued++
	at := fmt.Sprintf("mkat-%d-%s", p.issued, rand.Text())
	rt := fmt.Sprintf("mkrt-%d-%s", p.issued, rand.Text())
	p.access[at], p.refresh[rt] = true, true
	p.note(r.URL.Path, grant, fmt.Sprintf("issued tokens %d", p.issued))
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rt, "scope": "mail",
	})
}

// revoke ends a token (RFC 7009 §2): revoking a refresh token ends the grant, so its
// access tokens go too.
func (p *fakeProvider) revoke(w http.ResponseWriter, r *http.Request) {
	hint := r.PostFormValue("token_type_hint")
	tok := r.PostFormValue("token")
	switch {
	case p.refresh[tok]:
		p.note(r.URL.Path, hint, "the current refresh token, grant ended")
		clear(p.refresh)
		clear(p.access)
	case p.access[tok]:
		p.note(r.URL.Path, hint, "a live access token")
		p.access[tok] = false
	default:
		p.note(r.URL.Path, hint, "not a live token")
	}
	w.WriteHeader(http.StatusOK)
}

// isLoopback reports whether host is a loopback IP address.
func isLoopback(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// clientAuthenticated reports whether r carries the story client's credentials, in the
// Authorization header or in the body (RFC 6749 §2.3.1).
func clientAuthenticated(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	return id == storyClientID && secret == storyClientSecret
}

// oauthError writes an error response of RFC 6749 §5.2.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
