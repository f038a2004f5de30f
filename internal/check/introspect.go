package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxIntrospectionSize bounds an introspection answer: a few hundred
// bytes in practice.
const maxIntrospectionSize = 1 << 20

// ErrNoIntrospection is returned when the provider offers no RFC 7662
// introspection endpoint (Google and Microsoft do not).
var ErrNoIntrospection = errors.New("the provider offers no token introspection")

// Introspection is an RFC 7662 introspection answer, the parts that help
// a diagnosis.
type Introspection struct {
	Active   bool      `json:"active"`
	Scope    string    `json:"scope,omitempty"`
	ClientID string    `json:"client_id,omitempty"`
	Username string    `json:"username,omitempty"`
	Email    string    `json:"email,omitempty"` // a common extension
	Subject  string    `json:"sub,omitempty"`
	Expiry   time.Time `json:"-"`
}

// Identity returns the user the token was issued to: the email claim,
// else the username, else a subject that looks like an address.
func (in *Introspection) Identity() string {
	switch {
	case in.Email != "":
		return in.Email
	case in.Username != "":
		return in.Username
	case strings.Contains(in.Subject, "@"):
		return in.Subject
	}
	return ""
}

// Scopes returns the granted scopes.
func (in *Introspection) Scopes() []string { return strings.Fields(in.Scope) }

// Introspector asks an RFC 7662 endpoint about tokens, as the client that
// got them: with its secret (HTTP Basic, RFC 6749 §2.3.1) when it has one,
// else with its client_id alone, which some providers allow a public
// client for its own tokens.
type Introspector struct {
	URL          string
	ClientID     string
	ClientSecret string
	HTTPClient   *http.Client // nil means http.DefaultClient
}

// Introspect asks about token. It follows no redirect. Errors never
// contain the token.
func (c *Introspector) Introspect(ctx context.Context, token string) (*Introspection, error) {
	if c.URL == "" {
		return nil, ErrNoIntrospection
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if c.ClientSecret == "" {
		form.Set("client_id", c.ClientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	var hc http.Client
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	}
	// The request carries the token (and the client secret): it goes to
	// the published endpoint only. A 307 or 308 would resend it to
	// wherever the answer points, so a redirect is an answer, not a hop.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error quotes the URL, which holds no secret; the body did.
		return nil, fmt.Errorf("introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionSize))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: HTTP %d", resp.StatusCode)
	}
	var raw struct {
		Introspection
		Exp json.Number `json:"exp"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errors.New("introspection: the answer is not JSON")
	}
	out := raw.Introspection
	if secs, err := raw.Exp.Int64(); err == nil && secs > 0 {
		out.Expiry = time.Unix(secs, 0)
	}
	return &out, nil
}
