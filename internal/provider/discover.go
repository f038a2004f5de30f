package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
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
	// ErrUnavailable: the server could not be reached, timed out or
	// answered 429 or 5xx. The failure may pass by itself, and a cached
	// document may stand in meanwhile (see DiscoveryCache).
	ErrUnavailable = errors.New("authorization server unavailable")
)

// unavailableError words a failure that matches ErrUnavailable and keeps
// its cause (a net.Error, say) in the chain.
type unavailableError struct {
	msg   string
	cause error
}

func (e *unavailableError) Error() string { return e.msg }
func (e *unavailableError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrUnavailable}
	}
	return []error{ErrUnavailable, e.cause}
}

// Discover fetches the metadata of the authorization server identified by
// issuer. It tries OpenID Connect Discovery (ISSUER/.well-known/openid-configuration)
// first, then RFC 8414 (/.well-known/oauth-authorization-server inserted
// between host and path). The issuer in the document must equal the one
// asked for (a trailing slash aside), it must have a token endpoint, and
// every endpoint must pass CheckEndpoint. A nil hc means
// http.DefaultClient; ctx bounds the whole call.
func Discover(ctx context.Context, hc *http.Client, issuer string) (*Metadata, error) {
	md, _, err := discover(ctx, hc, issuer)
	return md, err
}

// document is a metadata document as the server sent it.
type document struct {
	source string
	body   []byte
	// freshFor is how long the server lets it be reused (Cache-Control);
	// known says whether it said.
	freshFor time.Duration
	known    bool
}

// discover is Discover that also returns the document it accepted.
func discover(ctx context.Context, hc *http.Client, issuer string) (*Metadata, *document, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	candidates, err := metadataURLs(issuer)
	if err != nil {
		return nil, nil, err
	}
	var tried []string
	for _, c := range candidates {
		doc, err := fetchMetadata(ctx, hc, c)
		if err != nil {
			return nil, nil, err
		}
		if doc == nil {
			tried = append(tried, c)
			continue
		}
		md, err := parseMetadata(issuer, c, doc.body)
		if err != nil {
			return nil, nil, err
		}
		return md, doc, nil
	}
	return nil, nil, fmt.Errorf("%w for issuer %s (tried %s)", ErrNoMetadata, issuer, strings.Join(tried, ", "))
}

// metadataURLs checks issuer and returns where its metadata may be, in
// the order to try.
func metadataURLs(issuer string) ([]string, error) {
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
	return []string{
		base + "/.well-known/openid-configuration",
		strings.TrimSuffix(rfc8414.String(), "/") + "/.well-known/oauth-authorization-server" + path,
	}, nil
}

// fetchMetadata GETs one candidate URL. A 404 (or 400/405/410, which some
// servers answer for unknown paths) means "not here" (nil, nil); other
// failures are errors, matching ErrUnavailable when they may pass.
func fetchMetadata(ctx context.Context, hc *http.Client, u string) (*document, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("discovery request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error would say `Get "URL": …`; the URL is said once here.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil {
			// The caller gave up: that is no outage of the server.
			return nil, fmt.Errorf("discovery: cannot fetch %s: %w", u, err)
		}
		return nil, &unavailableError{msg: fmt.Sprintf("discovery: cannot fetch %s: %v", u, err), cause: err}
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
	case code == http.StatusNotFound, code == http.StatusBadRequest, code == http.StatusMethodNotAllowed, code == http.StatusGone:
		return nil, nil
	case code == http.StatusTooManyRequests, code >= 500:
		return nil, &unavailableError{msg: fmt.Sprintf("discovery: %s answered %s", u, resp.Status)}
	default:
		return nil, fmt.Errorf("discovery: %s answered %s", u, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" && !strings.HasSuffix(mt, "+json") {
			return nil, fmt.Errorf("discovery: %s answered %s, not JSON", u, mt)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, metadataLimit+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("discovery: reading %s: %w", u, err)
		}
		return nil, &unavailableError{msg: fmt.Sprintf("discovery: reading %s: %v", u, err), cause: err}
	}
	if len(body) > metadataLimit {
		return nil, fmt.Errorf("discovery: %s is larger than %d bytes", u, metadataLimit)
	}
	doc := &document{source: u, body: body}
	doc.freshFor, doc.known = cacheControlMaxAge(resp.Header.Values("Cache-Control"))
	return doc, nil
}

// cacheControlMaxAge reads how long a response may be reused from its
// Cache-Control headers (RFC 9111 section 5.2.2): max-age, or zero for
// no-cache and no-store. known is false when they say neither.
func cacheControlMaxAge(values []string) (d time.Duration, known bool) {
	for _, v := range values {
		for _, dir := range strings.Split(v, ",") {
			name, arg, _ := strings.Cut(strings.TrimSpace(dir), "=")
			switch strings.ToLower(name) {
			case "no-cache", "no-store":
				return 0, true
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(arg, `"`), 10, 64)
				if err != nil || n < 0 {
					continue
				}
				if n > int64(math.MaxInt64/time.Second) {
					n = int64(math.MaxInt64 / time.Second)
				}
				d, known = time.Duration(n)*time.Second, true
			}
		}
	}
	return d, known
}

// parseMetadata decodes the document found at source for issuer and
// checks it: the issuer it names, a token endpoint, and every endpoint.
// Fetched and cached documents both pass through it.
func parseMetadata(issuer, source string, body []byte) (*Metadata, error) {
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
		return nil, fmt.Errorf("discovery: %s is not valid metadata JSON", source)
	}
	md := &Metadata{
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
		Source:               source,
	}
	if strings.TrimSuffix(md.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return nil, fmt.Errorf("%s names issuer %q, not %q: %w", source, md.Issuer, issuer, ErrIssuerMismatch)
	}
	if err := md.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return md, nil
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
