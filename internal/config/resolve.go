package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/mailkey/mailkey/internal/provider"
)

// Resolved is an account with its preset, overrides and discovered
// metadata merged: everything a flow, the token manager or the proxy needs.
type Resolved struct {
	Account  string // account name
	Provider string // preset name
	Email    string
	ClientID string
	// Tenant is the effective tenant of a Tenanted provider ("" otherwise).
	Tenant string
	// Cloud is the Microsoft cloud of the endpoints and servers ("" for
	// providers that have none).
	Cloud string

	Issuer, AuthURL, TokenURL, DeviceURL, RevokeURL, IntrospectURL, JWKSURL string

	// Scopes to request: the account's scopes if set; for app-only flows
	// the preset's app-only scopes; else the least-privilege scopes for
	// Protocols.
	Scopes    []string
	Protocols []provider.Protocol
	Servers   map[provider.Protocol]provider.Server

	// SASL is the mechanism to use upstream: "xoauth2" or "oauthbearer".
	SASL string
	// OAuthBearer: the servers offer OAUTHBEARER.
	OAuthBearer bool

	// DeviceAllowed says whether the device flow can be used; if not,
	// DeviceRefusal says why and what to use instead.
	DeviceAllowed bool
	DeviceRefusal string

	// IdentityByMailLogin: login proves who signed in by a mail login
	// (the provider names nobody in its grants); IdentityTenant is the
	// tid every ID token must carry, when the preset fixes one.
	IdentityByMailLogin bool
	IdentityTenant      string

	AuthParams  map[string]string
	RequirePKCE bool
	// IssParameter: the server sends iss in authorization responses
	// (RFC 9207), known from discovery.
	IssParameter bool
	// CodeChallengeMethods from discovery; empty when unknown.
	CodeChallengeMethods []string

	Flow                                                        string
	CAFile, CertificateFile, PrivateKeyFile, ServiceAccountFile string

	clientSecret    string
	clientSecretCmd string
	secretOnce      sync.Once
	secret          string
	secretErr       error
}

// HasSecret reports whether the account is configured with a client secret
// (inline or by command).
func (r *Resolved) HasSecret() bool {
	return r.clientSecret != "" || r.clientSecretCmd != ""
}

// ErrSecretCmd is wrapped when client_secret_cmd fails.
var ErrSecretCmd = errors.New("client_secret_cmd failed")

// Secret returns the client secret: client_secret, or the first line
// client_secret_cmd prints (run once, by sh -c, and remembered). It
// returns "" without error when neither is set. Errors never contain the
// command's output.
func (r *Resolved) Secret(ctx context.Context) (string, error) {
	if r.clientSecretCmd == "" {
		return r.clientSecret, nil
	}
	r.secretOnce.Do(func() {
		r.secret, r.secretErr = runSecretCmd(ctx, r.clientSecretCmd)
	})
	return r.secret, r.secretErr
}

func runSecretCmd(ctx context.Context, command string) (string, error) {
	var cmd *exec.Cmd
	if runtime.GOOS == "windows" {
		cmd = exec.CommandContext(ctx, "cmd", "/C", command)
	} else {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", command)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	// Stdin and stderr go to the null device: whatever the command prints
	// there could hold the secret and would end up in logs. Passphrase
	// prompts (gpg's pinentry) use the terminal directly.
	cmd.Stdin, cmd.Stderr = nil, nil
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%w: exit status %d", ErrSecretCmd, ee.ExitCode())
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: %w", ErrSecretCmd, ctx.Err())
		}
		return "", fmt.Errorf("%w: cannot start the command", ErrSecretCmd)
	}
	line, _, _ := strings.Cut(out.String(), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%w: it printed an empty first line", ErrSecretCmd)
	}
	return line, nil
}

// Resolve merges the account's preset and overrides. For the generic
// provider with an issuer it runs provider.Discover with hc (nil means
// http.DefaultClient); that is the only network I/O. Explicit endpoint
// settings win over discovered ones.
func (a *Account) Resolve(ctx context.Context, hc *http.Client) (*Resolved, error) {
	return a.ResolveWith(ctx, hc, provider.Discover)
}

// DiscoverFunc looks up an issuer's metadata: provider.Discover, or a
// provider.DiscoveryCache's Discover.
type DiscoverFunc func(ctx context.Context, hc *http.Client, issuer string) (*provider.Metadata, error)

// ResolveWith is Resolve with discover in place of provider.Discover.
func (a *Account) ResolveWith(ctx context.Context, hc *http.Client, discover DiscoverFunc) (*Resolved, error) {
	preset, err := provider.Lookup(a.Provider)
	if err != nil {
		return nil, err
	}
	if preset, err = preset.InCloud(a.Cloud); err != nil {
		return nil, err
	}
	preset, err = preset.Resolve(a.Tenant)
	if err != nil {
		return nil, err
	}
	r := &Resolved{
		Account:              a.Name,
		Provider:             preset.Name,
		Cloud:                preset.Cloud,
		Email:                a.Email,
		ClientID:             a.ClientID,
		Issuer:               preset.Issuer,
		AuthURL:              preset.AuthURL,
		TokenURL:             preset.TokenURL,
		DeviceURL:            preset.DeviceURL,
		RevokeURL:            preset.RevokeURL,
		Protocols:            slices.Clone(a.Protocols),
		Servers:              maps.Clone(a.Servers),
		OAuthBearer:          preset.OAuthBearer,
		AuthParams:           preset.AuthParams,
		IdentityByMailLogin:  preset.IdentityByMailLogin,
		IdentityTenant:       preset.IdentityTenant,
		RequirePKCE:          preset.RequirePKCE,
		Flow:                 a.Flow,
		CAFile:               a.CAFile,
		CertificateFile:      a.CertificateFile,
		PrivateKeyFile:       a.PrivateKeyFile,
		ServiceAccountFile:   a.ServiceAccountFile,
		clientSecret:         a.ClientSecret,
		clientSecretCmd:      a.ClientSecretCmd,
		CodeChallengeMethods: nil,
	}
	if r.Servers == nil {
		r.Servers = map[provider.Protocol]provider.Server{}
	}
	if preset.Tenanted {
		r.Tenant = preset.DefaultTenant
	}
	if a.Issuer != "" {
		r.Issuer = a.Issuer
		if preset.Name == provider.Generic {
			md, err := discover(ctx, hc, a.Issuer)
			if err != nil {
				return nil, fmt.Errorf("account %s: %w", a.Name, err)
			}
			r.Issuer = md.Issuer
			r.AuthURL, r.TokenURL, r.DeviceURL = md.AuthURL, md.TokenURL, md.DeviceURL
			r.RevokeURL, r.IntrospectURL, r.JWKSURL = md.RevokeURL, md.IntrospectURL, md.JWKSURL
			r.IssParameter = md.IssParameter
			r.CodeChallengeMethods = md.CodeChallengeMethods
		}
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{
		{&r.AuthURL, a.AuthURL}, {&r.TokenURL, a.TokenURL}, {&r.DeviceURL, a.DeviceURL},
		{&r.RevokeURL, a.RevokeURL}, {&r.IntrospectURL, a.IntrospectURL},
	} {
		if o.v != "" {
			*o.dst = o.v
		}
	}

	switch {
	case len(a.Scopes) > 0:
		r.Scopes = slices.Clone(a.Scopes)
	case a.Flow == FlowClientCredentials:
		r.Scopes = slices.Clone(preset.AppOnlyScopes)
	case a.Flow == FlowServiceAccount:
		// A JWT bearer grant yields no refresh token: no base scopes.
		for _, p := range r.Protocols {
			for _, s := range preset.Scopes[p] {
				if !slices.Contains(r.Scopes, s) {
					r.Scopes = append(r.Scopes, s)
				}
			}
		}
	default:
		r.Scopes = preset.ScopesFor(r.Protocols...)
		if len(r.Protocols) == 0 {
			r.Scopes = slices.Clone(preset.BaseScopes)
		}
	}

	r.SASL = preset.PreferSASL
	if a.SASL != "" {
		r.SASL = a.SASL
	}

	switch {
	case preset.DeviceRefusal != "":
		r.DeviceRefusal = preset.DeviceRefusal
	case r.DeviceURL == "":
		r.DeviceRefusal = "no device authorization endpoint is known for this account; set device_url, or use the browser (loopback) or --paste flow"
	case a.Flow != FlowInteractive:
		r.DeviceRefusal = "the account uses flow = \"" + a.Flow + "\", which needs no login"
	default:
		r.DeviceAllowed = preset.DeviceFlow
	}
	return r, nil
}
