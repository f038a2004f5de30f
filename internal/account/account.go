// Package account is the one assembly of a configured account: from its
// config entry to everything a command needs to act for it — the resolved
// endpoints (discovery, client_secret_cmd), the HTTP client that trusts its
// CA, its OAuth client (internal/oauth), the token source and lifecycle
// manager (internal/tokens) and the verified TLS config of its mail servers.
// Every subcommand and mailkey serve build accounts here.
//
// The assembly is lazy: nothing touches the network, runs a command or
// builds an HTTP client until a token must be fetched (or Resolve is
// called), so handing out a valid stored token costs no request.
package account

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// httpTimeout bounds one request to a provider; refreshPatience bounds a
// token request instead.
const (
	httpTimeout     = 30 * time.Second
	refreshPatience = 2 * time.Minute
)

// certPool returns the system roots plus the PEM certificates in caFile
// (none when caFile is empty).
func certPool(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// httpClient is the client used to talk to an account's provider: it trusts
// caFile too (a corporate identity provider). Like http.DefaultTransport it
// takes a proxy from the environment, but never for loopback addresses.
func httpClient(caFile string) (*http.Client, error) {
	pool, err := certPool(caFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = verified(pool, "")
	return &http.Client{Transport: tr, Timeout: httpTimeout}, nil
}

// TLSConfig is the verified TLS configuration for a server of an account
// whose ca_file is caFile (may be ""): the system roots plus ca_file, TLS
// 1.2 or later, the certificate checked against serverName (empty: the
// name dialled). Verification is never switched off.
func TLSConfig(caFile, serverName string) (*tls.Config, error) {
	pool, err := certPool(caFile)
	if err != nil {
		return nil, err
	}
	return verified(pool, serverName), nil
}

func verified(pool *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// OAuthClient builds the OAuth client for a resolved account.
func OAuthClient(ctx context.Context, r *config.Resolved, hc *http.Client) (*oauth.Client, error) {
	secret, err := r.Secret(ctx)
	if err != nil {
		return nil, err
	}
	style := oauth2.AuthStyleInHeader
	if secret == "" {
		style = oauth2.AuthStyleInParams
	}
	c := &oauth.Client{
		Config: oauth2.Config{
			ClientID:     r.ClientID,
			ClientSecret: secret,
			Endpoint: oauth2.Endpoint{
				AuthURL:       r.AuthURL,
				TokenURL:      r.TokenURL,
				DeviceAuthURL: r.DeviceURL,
				AuthStyle:     style,
			},
			Scopes: r.Scopes,
		},
		RevokeURL:          r.RevokeURL,
		Issuer:             r.Issuer,
		AuthParams:         r.AuthParams,
		HTTPClient:         hc,
		LoginHint:          r.Email,
		RequireIssuerParam: r.IssParameter,
	}
	if p, err := provider.Lookup(r.Provider); err == nil {
		c.RefreshNeedsScope = p.RefreshNeedsScope
		c.MultiTenantIssuer = p.MultiTenant(r.Tenant)
	}
	return c, nil
}

// Source mints and refreshes tokens for one account; it implements
// tokens.Source.
type Source struct {
	R      *config.Resolved
	Client *oauth.Client
}

// ErrNoRefreshToken: an interactive account whose record holds no refresh
// token can only get a new token by a new login.
var ErrNoRefreshToken = errors.New("no refresh token stored")

// noRefreshError is permanent: only a login helps.
type noRefreshError struct{}

func (noRefreshError) Error() string   { return ErrNoRefreshToken.Error() }
func (noRefreshError) Unwrap() error   { return ErrNoRefreshToken }
func (noRefreshError) Permanent() bool { return true }

// Refresh implements tokens.Source.
func (s *Source) Refresh(ctx context.Context, rec *store.Record) (*tokens.Fresh, error) {
	// A sent refresh is waited for, not abandoned at the usual timeout: the
	// provider may have rotated the refresh token already. The manager's
	// flight deadline still bounds it.
	ctx = oauth.WithPatience(ctx, refreshPatience)
	var (
		t   *oauth.Token
		err error
	)
	switch s.R.Flow {
	case config.FlowClientCredentials:
		if s.R.CertificateFile != "" {
			cert, key, lerr := oauth.LoadCertificate(s.R.CertificateFile, s.R.PrivateKeyFile)
			if lerr != nil {
				return nil, lerr
			}
			t, err = s.Client.ClientAssertion(ctx, cert, key)
		} else {
			t, err = s.Client.ClientCredentials(ctx)
		}
		err = tokens.Refusal(err)
	case config.FlowServiceAccount:
		keyJSON, rerr := os.ReadFile(s.R.ServiceAccountFile)
		if rerr != nil {
			return nil, fmt.Errorf("service_account_file: %w", rerr)
		}
		t, err = s.Client.ServiceAccount(ctx, keyJSON, s.R.Email)
		// No grant to lose: a refusal is a configuration problem.
		err = tokens.Refusal(err)
	default:
		if rec.RefreshToken == "" {
			return nil, noRefreshError{}
		}
		// Records written before the token endpoint was stored have none.
		if rec.TokenURL != "" && rec.TokenURL != s.R.TokenURL {
			return nil, &tokens.EndpointChangedError{Account: rec.Account, Stored: rec.TokenURL, Configured: s.R.TokenURL}
		}
		// Ask for what was granted: more would be refused (invalid_scope).
		t, err = s.Client.RefreshGranted(ctx, rec.RefreshToken, rec.Scopes)
	}
	if err != nil {
		return nil, err
	}
	return Fresh(t), nil
}

// Fresh converts a token from a flow into what the manager stores.
func Fresh(t *oauth.Token) *tokens.Fresh {
	return &tokens.Fresh{
		AccessToken:   t.AccessToken,
		TokenType:     t.TokenType,
		RefreshToken:  t.RefreshToken,
		Expiry:        t.Expiry,
		RefreshExpiry: t.RefreshExpiry,
		Scopes:        t.Scopes,
	}
}
