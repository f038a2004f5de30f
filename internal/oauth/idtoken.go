package oauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Identity is who an ID token names.
type Identity struct {
	Issuer            string
	Subject           string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string // Microsoft puts the sign-in address here
	TenantID          string // Microsoft's tid claim
}

var errDiscovery = errors.New("cannot read the provider's openid configuration")

// VerifyIDToken checks an OpenID Connect ID token (Core §3.1.3.7): the
// signature against the issuer's JWKS (found by discovery on Issuer), the
// audience (the client id), the issuer, the expiry and, when the
// authorization request sent one, the nonce; then returns the identity it
// names. For a MultiTenantIssuer the issuer is checked against
// the discovery document's template with the token's tid substituted,
// because go-oidc's exact check cannot work when every tenant has its own
// issuer. It fetches discovery and keys on every call.
func (c *Client) VerifyIDToken(ctx context.Context, raw, nonce string) (*Identity, error) {
	const op = "id token"
	secrets := []string{raw}
	if c.Issuer == "" {
		return nil, &Error{Op: op, Err: ErrNoIssuer}
	}
	if err := CheckEndpoint(c.Issuer); err != nil {
		return nil, classify(op, err, nil)
	}
	hctx := c.ctx(ctx)
	if c.MultiTenantIssuer {
		hctx = oidc.InsecureIssuerURLContext(hctx, c.Issuer)
	}
	p, err := oidc.NewProvider(hctx, c.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		if errors.As(err, &mismatch) || isNetwork(err) {
			return nil, classify(op, err, secrets)
		}
		return nil, &Error{Op: op, Err: errDiscovery} // the error text holds the response body
	}
	v := p.VerifierContext(hctx, &oidc.Config{
		ClientID:        c.Config.ClientID,
		SkipIssuerCheck: c.MultiTenantIssuer, // checked below against the template
	})
	idt, err := v.Verify(hctx, raw)
	if err != nil {
		return nil, &Error{Op: op, Err: sanitize(err, secrets)}
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, &Error{Op: op, Err: ErrNonceMismatch}
	}
	var claims struct {
		Email             string `json:"email"`
		EmailVerified     any    `json:"email_verified"` // bool, or "true" from some providers
		Name              string `json:"name"`
		PreferredUsername string `json:"preferred_username"`
		TenantID          string `json:"tid"`
	}
	if err := idt.Claims(&claims); err != nil {
		return nil, &Error{Op: op, Err: errors.New("cannot parse the id token's claims")}
	}
	if c.MultiTenantIssuer {
		var meta struct {
			Issuer string `json:"issuer"`
		}
		if err := p.Claims(&meta); err != nil || meta.Issuer == "" {
			return nil, &Error{Op: op, Err: errDiscovery}
		}
		if err := checkTenantIssuer(meta.Issuer, idt.Issuer, claims.TenantID); err != nil {
			return nil, &Error{Op: op, Err: err}
		}
	}
	verified := claims.EmailVerified == true || claims.EmailVerified == "true"
	return &Identity{
		Issuer:            idt.Issuer,
		Subject:           idt.Subject,
		Email:             claims.Email,
		EmailVerified:     verified,
		Name:              claims.Name,
		PreferredUsername: claims.PreferredUsername,
		TenantID:          claims.TenantID,
	}, nil
}

// Identify returns who signed in to get tok: the identity its ID token names
// (VerifyIDToken), completed from the UserInfo endpoint (OpenID Connect Core
// §5.3) with the access token when the ID token names no address. Providers
// that follow Core §5.4 strictly put the email claim only there when an
// access token is issued. The UserInfo subject must be the ID token's
// (Core §5.3.2). Without a UserInfo endpoint the identity stays without an
// address.
func (c *Client) Identify(ctx context.Context, tok *Token) (*Identity, error) {
	const op = "userinfo"
	id, err := c.VerifyIDToken(ctx, tok.IDToken, tok.Nonce)
	if err != nil || id.Email != "" || id.PreferredUsername != "" || tok.AccessToken == "" {
		return id, err
	}
	secrets := []string{tok.AccessToken, tok.RefreshToken, tok.IDToken}
	hctx := c.ctx(ctx)
	if c.MultiTenantIssuer {
		hctx = oidc.InsecureIssuerURLContext(hctx, c.Issuer)
	}
	p, err := oidc.NewProvider(hctx, c.Issuer)
	if err != nil {
		return nil, classify(op, err, secrets)
	}
	var meta struct {
		UserInfo string `json:"userinfo_endpoint"`
	}
	if err := p.Claims(&meta); err != nil || meta.UserInfo == "" {
		return id, nil
	}
	if err := CheckEndpoint(meta.UserInfo); err != nil {
		return nil, classify(op, err, nil)
	}
	ui, err := p.UserInfo(hctx, oauth2.StaticTokenSource(&tok.Token))
	if err != nil {
		if isNetwork(err) {
			return nil, classify(op, err, secrets)
		}
		return nil, &Error{Op: op, Err: errors.New("the provider did not say who signed in")} // the error text holds the response body
	}
	if ui.Subject != id.Subject {
		return nil, &Error{Op: op, Err: errors.New("userinfo names another subject than the id token")}
	}
	id.Email, id.EmailVerified = ui.Email, ui.EmailVerified
	return id, nil
}

// checkTenantIssuer checks a multi-tenant issuer: template is the discovered
// issuer, such as "https://login.microsoftonline.com/{tenantid}/v2.0".
func checkTenantIssuer(template, iss, tid string) error {
	want := template
	if strings.Contains(template, "{tenantid}") {
		if tid == "" || strings.ContainsAny(tid, "/?#") || url.PathEscape(tid) != tid {
			return errors.New("id token has no usable tid claim")
		}
		want = strings.ReplaceAll(template, "{tenantid}", tid)
	}
	if iss != want {
		return fmt.Errorf("id token issued by %q, expected %q", iss, want)
	}
	return nil
}
