package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/provider"
)

// HTTP limits. A provider that takes longer than this to answer one request is
// treated as down (a transient error), not waited for.
const (
	httpTimeout         = 30 * time.Second
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	responseBodyLimit   = 1 << 20 // same as x/oauth2
	userAgent           = "mailkey"
)

// Client holds one OAuth client registration at one provider. The zero value
// is not useful: Config.ClientID and the endpoints must be set. A Client is
// safe for concurrent use as long as its fields are not changed.
type Client struct {
	// Config holds ClientID, ClientSecret (empty for public clients),
	// Endpoint{AuthURL, TokenURL, DeviceAuthURL, AuthStyle} and Scopes.
	// Config.RedirectURL is ignored: the flows choose their redirect URI.
	Config oauth2.Config
	// RevokeURL is the RFC 7009 revocation endpoint; empty if the provider
	// has none.
	RevokeURL string
	// Issuer is the OpenID issuer URL. It is used to verify ID tokens and to
	// check the RFC 9207 iss parameter of authorization responses. Optional.
	Issuer string
	// MultiTenantIssuer marks Issuer as a multi-tenant Microsoft endpoint
	// ("…/common/v2.0", "…/organizations/v2.0", "…/consumers/v2.0"). Its
	// discovery document names a template issuer such as
	// "https://login.microsoftonline.com/{tenantid}/v2.0", never Issuer
	// itself, and each ID token carries the issuer of the user's tenant. With
	// this set, ID tokens are checked against the template with the token's
	// tid claim substituted, and an iss authorization-response parameter
	// only needs to have Issuer's scheme and host.
	MultiTenantIssuer bool
	// RequireIssuerParam rejects authorization responses without iss; set it
	// when the server's metadata has authorization_response_iss_parameter_supported
	// (RFC 9207 §2.4).
	RequireIssuerParam bool
	// AuthParams are extra authorization request parameters, such as Google's
	// access_type=offline and prompt=consent.
	AuthParams map[string]string
	// HTTPClient sends every request (with a private CA pool, a proxy, …).
	// Nil means a default client with timeouts. Either way a 30 s overall
	// timeout applies when the client has none, requests carry
	// "User-Agent: mailkey", and any request to a non-https, non-loopback URL
	// (redirects included) fails with ErrInsecureEndpoint.
	HTTPClient *http.Client
	// LoginHint is the mailbox address, sent as login_hint.
	LoginHint string
	// RefreshNeedsScope: the token endpoint wants a scope parameter on every
	// refresh (the Microsoft identity platform v2). Without it a refresh
	// the provider refuses with invalid_scope is retried once with no scope
	// parameter, which means "the scopes granted" (RFC 6749 §6).
	RefreshNeedsScope bool
	// RedirectHost is the loopback host named in redirect URIs:
	// "127.0.0.1" (the default, RFC 8252 §7.3), "::1", or "localhost" for
	// registrations that only allow that name (Microsoft Entra). With
	// "localhost" the loopback listener binds both 127.0.0.1 and ::1.
	RedirectHost string
}

// Token is what every flow returns: the oauth2.Token plus what mail needs to
// know about it. Its String and GoString methods never show a secret; its
// JSON form holds the tokens and is meant for an encrypted store only.
type Token struct {
	oauth2.Token
	// Scopes are the scopes granted, from the response's scope parameter,
	// or the requested scopes when the response does not name them
	// (RFC 6749 §5.1).
	Scopes []string `json:"scopes,omitempty"`
	// IDToken is the raw OpenID Connect ID token, if one was returned.
	IDToken string `json:"id_token,omitempty"`
	// RefreshExpiry is when the refresh token dies, from Google's
	// refresh_token_expires_in (apps in "Testing" get seven days); zero when
	// the provider does not say.
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
	// Nonce is the nonce the authorization request sent (OpenID Connect
	// Core §3.1.2.1), which its ID token must carry; empty for flows that
	// send none (device, refresh). It is never stored.
	Nonce string `json:"-"`
}

// String describes the token without any secret.
func (t Token) String() string {
	var b strings.Builder
	b.WriteString("token(" + t.Type())
	if !t.Expiry.IsZero() {
		b.WriteString(", expires " + t.Expiry.UTC().Format(time.RFC3339))
	}
	if t.RefreshToken != "" {
		b.WriteString(", refreshable")
	}
	if len(t.Scopes) > 0 {
		b.WriteString(", scopes " + strings.Join(t.Scopes, " "))
	}
	b.WriteString(")")
	return b.String()
}

// GoString keeps %#v from printing secrets.
func (t Token) GoString() string { return "oauth." + t.String() }

// newToken wraps t with the granted scopes, the ID token and the refresh
// token's expiry.
func newToken(t *oauth2.Token, requested []string, now time.Time) *Token {
	out := &Token{Token: *t}
	if s, ok := t.Extra("scope").(string); ok && strings.TrimSpace(s) != "" {
		out.Scopes = strings.Fields(s)
	} else if len(requested) > 0 {
		out.Scopes = append([]string(nil), requested...)
	}
	if s, ok := t.Extra("id_token").(string); ok {
		out.IDToken = s
	}
	if secs, ok := number(t.Extra("refresh_token_expires_in")); ok && secs > 0 {
		out.RefreshExpiry = now.Add(time.Duration(secs) * time.Second)
	}
	if out.Expiry.IsZero() && out.ExpiresIn > 0 {
		out.Expiry = now.Add(time.Duration(out.ExpiresIn) * time.Second)
	}
	return out
}

// number reads a JSON or form-encoded numeric extra field.
func number(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		return int64(n), true
	case int64:
		return n, true
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case string:
		i, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		return i, err == nil
	}
	return 0, false
}

// defaultTransport is shared so connections are reused across calls. It is made on first
// use: a command that answers from the store, such as mailkey token, needs none.
var defaultTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = tlsHandshakeTimeout
	t.ResponseHeaderTimeout = httpTimeout
	return t
})

// httpClient returns the client every request goes through.
func (c *Client) httpClient() *http.Client {
	var hc http.Client
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	if hc.Timeout == 0 {
		hc.Timeout = httpTimeout
	}
	base := hc.Transport
	if base == nil {
		base = defaultTransport()
	}
	hc.Transport = guard{base: base}
	return &hc
}

type patienceKey struct{}

// WithPatience returns ctx with d as the time a token request may take,
// instead of the client's usual timeout. A refresh that is seen through to
// the store uses it: once the provider has read the request it may already
// have rotated the refresh token, so giving up early loses the grant. ctx's
// own deadline still applies.
func WithPatience(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, patienceKey{}, d)
}

// ctx returns ctx carrying the HTTP client for x/oauth2 and go-oidc.
func (c *Client) ctx(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c.httpClient())
}

// guard enforces the endpoint rule on every request, redirects included, and
// sets the User-Agent.
type guard struct{ base http.RoundTripper }

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := checkURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	if req.Header.Get("User-Agent") == "" {
		req = req.Clone(req.Context())
		req.Header.Set("User-Agent", userAgent)
	}
	return g.base.RoundTrip(req)
}

// CheckEndpoint reports whether raw may be used as a provider endpoint: it
// must be an absolute https URL, or http on a loopback host (127.0.0.0/8, ::1,
// localhost), as RFC 9700 §2.6 and RFC 8252 §8.3 ask.
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		// raw is not repeated: user information in it may hold a password.
		return fmt.Errorf("%w: cannot parse the url", ErrInsecureEndpoint)
	}
	return checkURL(u)
}

func checkURL(u *url.URL) error {
	if u.Host == "" {
		return fmt.Errorf("%w: %q is not an absolute url", ErrInsecureEndpoint, u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if provider.IsLoopbackHost(u.Hostname()) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s://%s", ErrInsecureEndpoint, u.Scheme, u.Host)
}

// checkEndpoints validates the named endpoints up front, so a flow fails
// before it sends the user to a browser.
func checkEndpoints(urls ...string) error {
	for _, u := range urls {
		if u == "" {
			return ErrMissingEndpoint
		}
		if err := CheckEndpoint(u); err != nil {
			return err
		}
	}
	return nil
}

// randomString returns n random bytes, base64url encoded.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// tokenRequest posts form to the token endpoint with the client's
// authentication and parses the answer; requested are the scopes the
// request asked for, which the response's scope parameter overrides
// (RFC 6749 §5.1). x/oauth2 offers no way to send a scope with a refresh
// (Microsoft wants one) or to poll the device endpoint with an injectable
// clock; every other grant goes through x/oauth2.
func (c *Client) tokenRequest(ctx context.Context, op string, form url.Values, requested []string, now time.Time, secrets ...string) (*Token, error) {
	secrets = append(secrets, c.Config.ClientSecret)
	resp, body, err := c.post(ctx, c.Config.Endpoint.TokenURL, form, true)
	if err != nil {
		return nil, classify(op, err, secrets)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, errorFromBody(op, resp.StatusCode, resp.Header, body, secrets)
	}
	t := &oauth2.Token{}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if ct == "application/x-www-form-urlencoded" || ct == "text/plain" {
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, &Error{Op: op, Status: resp.StatusCode, Err: errBadResponse}
		}
		t.AccessToken, t.TokenType, t.RefreshToken = v.Get("access_token"), v.Get("token_type"), v.Get("refresh_token")
		t.ExpiresIn, _ = strconv.ParseInt(v.Get("expires_in"), 10, 64)
		if v.Get("error") != "" {
			return nil, errorFromBody(op, resp.StatusCode, resp.Header, body, secrets)
		}
		t = t.WithExtra(v)
	} else {
		var raw map[string]any
		if json.Unmarshal(body, &raw) != nil {
			return nil, &Error{Op: op, Status: resp.StatusCode, Err: errBadResponse}
		}
		if _, ok := raw["error"]; ok {
			return nil, errorFromBody(op, resp.StatusCode, resp.Header, body, secrets)
		}
		t.AccessToken, _ = raw["access_token"].(string)
		t.TokenType, _ = raw["token_type"].(string)
		t.RefreshToken, _ = raw["refresh_token"].(string)
		t.ExpiresIn, _ = number(raw["expires_in"]) // some providers send a string
		t = t.WithExtra(raw)
	}
	if t.AccessToken == "" {
		return nil, &Error{Op: op, Status: resp.StatusCode, Err: errNoAccessToken}
	}
	if t.ExpiresIn > 0 {
		t.Expiry = now.Add(time.Duration(t.ExpiresIn) * time.Second)
	}
	return newToken(t, requested, now), nil
}

var (
	errBadResponse   = fmt.Errorf("cannot parse the provider's response")
	errNoAccessToken = fmt.Errorf("token response has no access_token")
)

// post sends an application/x-www-form-urlencoded POST. With auth, the client
// authenticates as RFC 6749 §2.3.1 says: HTTP Basic when the endpoint's
// AuthStyle asks for the header, otherwise client_id (and client_secret) in
// the body, which every mail provider accepts.
func (c *Client) post(ctx context.Context, endpoint string, form url.Values, auth bool) (*http.Response, []byte, error) {
	if err := CheckEndpoint(endpoint); err != nil {
		return nil, nil, err
	}
	form = cloneValues(form)
	header := c.Config.Endpoint.AuthStyle == oauth2.AuthStyleInHeader && c.Config.ClientSecret != ""
	if auth && !header {
		form.Set("client_id", c.Config.ClientID)
		if c.Config.ClientSecret != "" {
			form.Set("client_secret", c.Config.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if auth && header {
		req.SetBasicAuth(url.QueryEscape(c.Config.ClientID), url.QueryEscape(c.Config.ClientSecret))
	}
	hc := c.httpClient()
	if d, ok := ctx.Value(patienceKey{}).(time.Duration); ok && d > hc.Timeout {
		hc.Timeout = d
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, responseBodyLimit))
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v)+2)
	for k, vv := range v {
		out[k] = append([]string(nil), vv...)
	}
	return out
}

// Refresh exchanges refreshToken for a new access token (RFC 6749 §6),
// for a grant whose scopes are not known: RefreshGranted with none.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	return c.RefreshGranted(ctx, refreshToken, nil)
}

// RefreshGranted exchanges refreshToken for a new access token (RFC 6749
// §6). granted are the scopes the token endpoint last said it granted
// (nil when unknown). A refresh may not ask for more than was granted, so
// the request carries Config.Scopes limited to granted (RefreshScopes);
// the Microsoft identity platform wants a scope on every refresh. When the
// provider still answers invalid_scope (it granted less than the response
// said, or granted is unknown), the request is sent once more with fewer
// scopes (FallbackScopes): none at all, which means "as originally
// granted", or where a scope is required, without the OpenID Connect
// scopes. An invalid_scope answer does not spend the refresh token.
//
// When the response has no refresh token the old one is kept; a rotated
// one replaces it, and the caller must persist it before using the new
// access token.
func (c *Client) RefreshGranted(ctx context.Context, refreshToken string, granted []string) (*Token, error) {
	const op = "refresh"
	if err := checkEndpoints(c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	scopes := RefreshScopes(c.Config.Scopes, granted)
	tok, err := c.refresh(ctx, op, refreshToken, scopes)
	var e *Error
	if errors.As(err, &e) && e.Code == "invalid_scope" {
		if fewer, retry := FallbackScopes(scopes, c.RefreshNeedsScope); retry {
			tok, err = c.refresh(ctx, op, refreshToken, fewer)
		}
	}
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken
	}
	return tok, nil
}

// refresh sends one refresh_token grant asking for scopes (none: no scope
// parameter). The token's Scopes are the response's, else scopes.
func (c *Client) refresh(ctx context.Context, op, refreshToken string, scopes []string) (*Token, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	return c.tokenRequest(ctx, op, form, scopes, time.Now(), refreshToken)
}

// RefreshScopes returns the scopes a refresh asks for: the configured ones
// the grant holds, in configured order. With granted unknown (empty) it is
// configured; when none of configured was granted (the account's scopes
// changed since the login), it is granted, which the provider cannot
// refuse. Nil means no scope parameter.
func RefreshScopes(configured, granted []string) []string {
	if len(configured) == 0 || len(granted) == 0 {
		return slices.Clone(configured)
	}
	var out []string
	for _, s := range configured {
		if slices.Contains(granted, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return slices.Clone(granted)
	}
	return out
}

// oidcScopes are OpenID Connect scopes (Core §5.4, §11): they ask for
// identity claims or a refresh token, not for mail access, and providers
// grant or trim them on their own (oidc-provider drops offline_access
// without prompt=consent).
var oidcScopes = []string{"openid", "profile", "email", "offline_access"}

// FallbackScopes returns what to ask for after a refresh asking for sent
// was refused with invalid_scope, and whether another request can help:
// no scope parameter at all (nil), or, when the provider needs a scope,
// sent without the OpenID Connect scopes.
func FallbackScopes(sent []string, needScope bool) ([]string, bool) {
	if len(sent) == 0 {
		return nil, false
	}
	if !needScope {
		return nil, true
	}
	var out []string
	for _, s := range sent {
		if !slices.Contains(oidcScopes, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 || len(out) == len(sent) {
		return nil, false
	}
	return out, true
}

// exchange redeems an authorization code with its PKCE verifier.
func (c *Client) exchange(ctx context.Context, code, verifier, redirectURI, nonce string) (*Token, error) {
	const op = "token exchange"
	secrets := []string{code, verifier, c.Config.ClientSecret}
	if err := checkEndpoints(c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, secrets)
	}
	conf := c.Config
	conf.RedirectURL = redirectURI
	t, err := conf.Exchange(c.ctx(ctx), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, classify(op, err, secrets)
	}
	tok := newToken(t, c.Config.Scopes, time.Now())
	tok.Nonce = nonce
	return tok, nil
}
