package oauth

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/provider"
)

// AuthCodeURL returns the authorization request URL (RFC 6749 §4.1.1) with
// state, the PKCE S256 challenge of verifier (RFC 7636 §4.3), redirectURI,
// Config.Scopes, AuthParams, LoginHint and, when not empty, the OpenID
// Connect nonce (Core §3.1.2.1). It does no I/O.
func (c *Client) AuthCodeURL(state, verifier, redirectURI, nonce string) string {
	conf := c.Config
	conf.RedirectURL = redirectURI
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", nonce))
	}
	for k, v := range c.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	if c.LoginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", c.LoginHint))
	}
	return conf.AuthCodeURL(state, opts...)
}

// newNonce returns a nonce for an authorization request that asks for an
// ID token (scope openid), and "" for one that does not.
func (c *Client) newNonce() string {
	if !slices.Contains(c.Config.Scopes, "openid") {
		return ""
	}
	return randomString(32)
}

// redirectHost returns the host for redirect URIs, defaulting to 127.0.0.1.
func (c *Client) redirectHost() (string, error) {
	h := strings.TrimSuffix(strings.TrimPrefix(c.RedirectHost, "["), "]")
	if h == "" {
		return "127.0.0.1", nil
	}
	if !provider.IsLoopbackHost(h) {
		return "", &Error{Op: "redirect", Err: fmt.Errorf("%w: redirect host %q is not a loopback address", ErrInsecureEndpoint, h)}
	}
	return h, nil
}

// redirectURI is the loopback redirect URI for host and port (RFC 8252 §7.3).
func redirectURI(host string, port int) string {
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/"
}

// sameState compares states in constant time.
func sameState(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// codeFromRedirect checks an authorization response whose state already
// matched: the RFC 9207 iss parameter, then an error response (RFC 6749
// §4.1.2.1), then the code.
func (c *Client) codeFromRedirect(q url.Values) (string, error) {
	const op = "authorization"
	iss, hasIss := q["iss"]
	switch {
	case hasIss && c.Issuer != "" && !c.issuerMatches(iss[0]):
		return "", &Error{Op: op, Err: ErrIssuerMismatch}
	case !hasIss && c.RequireIssuerParam:
		return "", &Error{Op: op, Err: ErrMissingIssuer}
	}
	if code := q.Get("error"); code != "" {
		e := &Error{Op: op}
		if validCode(code) {
			e.Code = code
		} else {
			e.Code = "invalid_response"
		}
		e.Description = redact(collapse(q.Get("error_description")), []string{q.Get("code"), c.Config.ClientSecret})
		e.AADSTS = aadsts(e.Description)
		e.Kind, e.Err = kindOf(e.Code, 0)
		return "", e
	}
	code := q.Get("code")
	if code == "" {
		return "", &Error{Op: op, Err: ErrNoCode}
	}
	return code, nil
}

// issuerMatches compares an iss parameter with Issuer: exactly, as RFC 9207
// §2.4 asks, or by scheme and host for a multi-tenant issuer whose tenant
// segment varies.
func (c *Client) issuerMatches(iss string) bool {
	if iss == c.Issuer {
		return true
	}
	if !c.MultiTenantIssuer {
		return false
	}
	a, err1 := url.Parse(iss)
	b, err2 := url.Parse(c.Issuer)
	return err1 == nil && err2 == nil && a.Scheme == "https" && a.Scheme == b.Scheme && strings.EqualFold(a.Host, b.Host)
}

// words says in plain language why a browser login failed; it is shown on the
// callback page. It never includes a secret: *Error texts have none.
func words(err error) string {
	e := Classify(err)
	switch {
	case e == nil:
		return ""
	case e.Code == "access_denied":
		return "You denied access, or an administrator's policy did not allow this app."
	case e.Code == "invalid_scope":
		return "The provider refused the requested permissions (invalid_scope)."
	case e.Code == "unauthorized_client":
		return "This app is not allowed to use this way of signing in (unauthorized_client)."
	case e.Code == "consent_required", e.Code == "interaction_required", e.Code == "login_required":
		return "The provider needs you to sign in and consent again (" + e.Code + ")."
	case e.Code == "server_error", e.Code == "temporarily_unavailable":
		return "The provider had a temporary problem. Try again in a moment."
	case e.Op == "authorization" && e.Code != "":
		return "The provider reported an error: " + e.Error()
	case e.Op == "authorization":
		return "The sign-in response was rejected: " + e.Error()
	}
	return "Signing in failed: " + e.Error()
}
