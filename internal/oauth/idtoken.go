package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
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
// audience (the client id), the issuer and the expiry; then returns the
// identity it names. For a MultiTenantIssuer the issuer is checked against
// the discovery document's template with the token's tid substituted,
// because go-oidc's exact check cannot work when every tenant has its own
// issuer. It fetches discovery and keys on every call.
func (c *Client) VerifyIDToken(ctx context.Context, raw string) (*Identity, error) {
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
