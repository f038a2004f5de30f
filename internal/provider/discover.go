package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// metadataLimit bounds a metadata document; real ones are a few KiB.
const metadataLimit = 1 << 20

// Metadata is what Discover learned about an authorization server.
type Metadata struct {
	Issuer        string
	AuthURL       string // authorization_endpoint
	TokenURL      string // token_endpoint
	DeviceURL     string // device_authorization_endpoint (RFC 8628)
	RevokeURL     string // revocation_endpoint (RFC 7009)
	IntrospectURL string // introspection_endpoint (RFC 7662)
	JWKSURL       string // jwks_uri

	CodeChallengeMethods []string // code_challenge_methods_supported
	GrantTypes           []string // grant_types_supported
	ScopesSupported      []string // scopes_supported
	// IssParameter: the server sends iss in authorization responses
	// (RFC 9207), so the client must check it.
	IssParameter bool
	// Source is the URL the metadata was read from.
	Source string
}

// Errors wrapped by Discover.
var (
	// ErrNoMetadata: neither well-known document was found.
	ErrNoMetadata = errors.New("no authorization server metadata found")
	// ErrIssuerMismatch: the document names another issuer, so it must
	// not be trusted (RFC 8414 section 3.3).
	ErrIssuerMismatch = errors.New("metadata issuer does not match")
)

// Discover fetches the metadata of the authorization server identified by
// issuer. It tries OpenID Connect Discovery (ISSUER/.well-known/openid-configuration)
// first, then RFC 8414 (/.well-known/oauth-authorization-server inserted
// between host and path). The issuer in the document must equal the one
// asked for (a trailing slash aside), it must have a token endpoint, and
// every endpoint must pass CheckEndpoint. A nil hc means
// http.DefaultClient; ctx bounds the whole call.
func Discover(ctx context.Context, hc *http.Client, issuer string) (*Metadata, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	if err := CheckEndpoint(issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, fmt.Errorf("issuer %q is not a URL", issuer)
	}
	if u.RawQuery != "" {
		return nil, fmt.Errorf("issuer %q must not have a query", issuer)
	}
	base := strings.TrimSuffix(issuer, "/")
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	rfc8414 := *u
	rfc8414.RawPath = ""
	rfc8414.Path = ""
	candidates := []string{
		base + "/.well-known/openid-configuration",
		strings.TrimSuffix(rfc8414.String(), "/") + "/.well-known/oauth-authorization-server" + path,
	}
	var tried []string
	for _, c := range candidates {
		md, found, err := fetchMetadata(ctx, hc, c)
		if err != nil {
			return nil, err
		}
		if !found {
			tried = append(tried, c)
			continue
		}
		if strings.TrimSuffix(md.Issuer, "/") != base {
			return nil, fmt.Errorf("%s names issuer %q, not %q: %w", c, md.Issuer, issuer, ErrIssuerMismatch)
		}
		if err := md.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		md.Source = c
		return md, nil
	}
	return nil, fmt.Errorf("%w for issuer %s (tried %s)", ErrNoMetadata, issuer, strings.Join(tried, ", "))
}

// fetchMetadata GETs one candidate URL. A 404 (or 400/405/410, which some
// servers answer for unknown paths) means "not here"; other failures are
// errors.
func fetchMetadata(ctx context.Context, hc *http.Client, u string) (*Metadata, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false, fmt.Errorf("discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error would say `Get "URL": …`; the URL is said once here.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, false, fmt.Errorf("discovery: cannot fetch %s: %w", u, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusGone:
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("discovery: %s answered %s", u, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return nil, false, fmt.Errorf("discovery: %s answered %s, not JSON", u, mt)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, metadataLimit+1))
	if err != nil {
		return nil, false, fmt.Errorf("discovery: reading %s: %w", u, err)
	}
	if len(body) > metadataLimit {
		return nil, false, fmt.Errorf("discovery: %s is larger than %d bytes", u, metadataLimit)
	}
	var doc struct {
		Issuer                string   `json:"issuer"`
		Authorization         string   `json:"authorization_endpoint"`
		Token                 string   `json:"token_endpoint"`
		Device                string   `json:"device_authorization_endpoint"`
		Revocation            string   `json:"revocation_endpoint"`
		Introspection         string   `json:"introspection_endpoint"`
		JWKS                  string   `json:"jwks_uri"`
		CodeChallengeMethods  []string `json:"code_challenge_methods_supported"`
		GrantTypes            []string `json:"grant_types_supported"`
		Scopes                []string `json:"scopes_supported"`
		IssParameterSupported bool     `json:"authorization_response_iss_parameter_supported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, false, fmt.Errorf("discovery: %s is not valid metadata JSON", u)
	}
	return &Metadata{
		Issuer:               doc.Issuer,
		AuthURL:              doc.Authorization,
		TokenURL:             doc.Token,
		DeviceURL:            doc.Device,
		RevokeURL:            doc.Revocation,
		IntrospectURL:        doc.Introspection,
		JWKSURL:              doc.JWKS,
		CodeChallengeMethods: doc.CodeChallengeMethods,
		GrantTypes:           doc.GrantTypes,
		ScopesSupported:      doc.Scopes,
		IssParameter:         doc.IssParameterSupported,
	}, true, nil
}

func (m *Metadata) check() error {
	if m.TokenURL == "" {
		return errors.New("metadata has no token_endpoint")
	}
	for _, e := range []struct{ name, u string }{
		{"authorization_endpoint", m.AuthURL},
		{"token_endpoint", m.TokenURL},
		{"device_authorization_endpoint", m.DeviceURL},
		{"revocation_endpoint", m.RevokeURL},
		{"introspection_endpoint", m.IntrospectURL},
		{"jwks_uri", m.JWKSURL},
	} {
		if e.u == "" {
			continue
		}
		if err := CheckEndpoint(e.u); err != nil {
			return fmt.Errorf("%s: %w", e.name, err)
		}
	}
	return nil
}
