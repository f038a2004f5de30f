package oauth

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/provider"
)

// An AuthRequest is one authorization code request in progress (RFC 6749
// §4.1) whose redirect a caller receives itself, such as mailkey serve's
// status page: the URL to send the browser to, with PKCE S256, a random
// state and, for OpenID Connect, a nonce. Its verifier and nonce never
// leave the process.
type AuthRequest struct {
	URL      string // the authorization URL to open
	State    string // the state the redirect must carry back
	Redirect string // the redirect URI, as sent
	verifier string
	nonce    string
}

// NewAuthRequest prepares an authorization request whose redirect comes
// back to redirectURI, which must be an http URI on a loopback host (RFC
// 8252 §7.3). It does no I/O.
func (c *Client) NewAuthRequest(redirectURI string) (*AuthRequest, error) {
	const op = "browser login"
	if err := checkEndpoints(c.Config.Endpoint.AuthURL, c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme != "http" || !provider.IsLoopbackHost(strings.Trim(u.Hostname(), "[]")) {
		return nil, &Error{Op: "redirect", Err: fmt.Errorf("%w: redirect %q is not http on a loopback host", ErrInsecureEndpoint, redirectURI)}
	}
	return c.newAuthRequest(redirectURI), nil
}

func (c *Client) newAuthRequest(redirectURI string) *AuthRequest {
	req := &AuthRequest{State: randomString(32), Redirect: redirectURI, verifier: oauth2.GenerateVerifier(), nonce: c.newNonce()}
	req.URL = c.AuthCodeURL(req.State, req.verifier, redirectURI, req.nonce)
	return req
}

// Finish checks the redirect's query against req: its state (else
// ErrStateMismatch), its RFC 9207 iss, a provider error (an *Error), and
// exchanges the code for a token, the ID token's nonce checked.
func (c *Client) Finish(ctx context.Context, req *AuthRequest, q url.Values) (*Token, error) {
	if !sameState(q.Get("state"), req.State) {
		return nil, &Error{Op: "authorization", Err: ErrStateMismatch}
	}
	return c.finishCallback(ctx, q, req.verifier, req.Redirect, req.nonce)
}
