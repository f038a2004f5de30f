package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
)

func TestAuthRequestRedirectMustBeLoopback(t *testing.T) {
	c := newProvider(t).client()
	for _, u := range []string{"https://127.0.0.1:8080/", "http://example.com:8080/", "http://10.0.0.1/", "127.0.0.1:8080"} {
		if _, err := c.NewAuthRequest(u); !errors.Is(err, ErrInsecureEndpoint) {
			t.Errorf("NewAuthRequest(%q) = %v, want ErrInsecureEndpoint", u, err)
		}
	}
}

// authorize follows the authorization URL to the provider's redirect and
// returns its query.
func authorize(t *testing.T, authURL string) url.Values {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("authorization answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query()
}

func TestAuthRequestFinish(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	req, err := c.NewAuthRequest("http://127.0.0.1:9/")
	if err != nil {
		t.Fatal(err)
	}
	q := authorize(t, req.URL)
	if p.authQuery.Get("code_challenge_method") != "S256" || p.authQuery.Get("redirect_uri") != "http://127.0.0.1:9/" {
		t.Errorf("authorization request = %v", p.authQuery)
	}

	forged := url.Values{"code": q["code"], "state": {"forged"}}
	if _, err := c.Finish(context.Background(), req, forged); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("Finish with another state = %v, want ErrStateMismatch", err)
	}
	tok, err := c.Finish(context.Background(), req, q)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || p.tokenForm.Get("code_verifier") == "" || p.tokenForm.Get("redirect_uri") != req.Redirect {
		t.Errorf("token %v from form %v", tok != nil, p.tokenForm)
	}
}
