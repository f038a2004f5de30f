package oauth

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestRefreshScopes(t *testing.T) {
	const mail, imap, smtp = "https://mail.example/", "https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send"
	for _, tc := range []struct {
		name                string
		configured, granted []string
		want                []string
	}{
		{"no scopes configured: no scope parameter", nil, []string{mail}, nil},
		{"granted unknown: the configured ones", []string{"openid", mail, "offline_access"}, nil, []string{"openid", mail, "offline_access"}},
		{"offline_access not granted is left out", []string{"openid", "email", mail, "offline_access"}, []string{"openid", "email", mail}, []string{"openid", "email", mail}},
		{"all granted: unchanged", []string{imap, smtp, "offline_access"}, []string{"offline_access", smtp, imap}, []string{imap, smtp, "offline_access"}},
		{"Microsoft granted the resource scopes only", []string{imap, smtp, "offline_access"}, []string{imap, smtp}, []string{imap, smtp}},
		{"Google expands email", []string{mail, "openid", "email"}, []string{"openid", mail, "https://www.googleapis.com/auth/userinfo.email"}, []string{mail, "openid"}},
		{"a scope added after the login is not asked for", []string{imap, smtp}, []string{imap}, []string{imap}},
		{"nothing in common: what was granted", []string{"https://new.example/"}, []string{mail}, []string{mail}},
		{"duplicates once", []string{mail, mail}, []string{mail}, []string{mail}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := RefreshScopes(tc.configured, tc.granted); !slices.Equal(got, tc.want) {
				t.Errorf("RefreshScopes(%q, %q) = %q, want %q", tc.configured, tc.granted, got, tc.want)
			}
		})
	}
}

func TestFallbackScopes(t *testing.T) {
	const imap = "https://outlook.office.com/IMAP.AccessAsUser.All"
	for _, tc := range []struct {
		name      string
		sent      []string
		needScope bool
		want      []string
		retry     bool
	}{
		{"no scope was sent: nothing to drop", nil, false, nil, false},
		{"scope optional: none at all", []string{"openid", "mail", "offline_access"}, false, nil, true},
		{"scope required: without the OpenID scopes", []string{imap, "offline_access", "openid"}, true, []string{imap}, true},
		{"scope required, no OpenID scope to drop", []string{imap}, true, nil, false},
		{"scope required, only OpenID scopes", []string{"openid", "offline_access"}, true, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, retry := FallbackScopes(tc.sent, tc.needScope)
			if retry != tc.retry || !slices.Equal(got, tc.want) {
				t.Errorf("FallbackScopes(%q, %v) = %q, %v; want %q, %v", tc.sent, tc.needScope, got, retry, tc.want, tc.retry)
			}
		})
	}
}

// scopeProvider answers refreshes like oidc-provider: a scope parameter
// naming anything beyond granted is refused with invalid_scope; no scope
// parameter means the granted scopes.
func scopeProvider(t *testing.T, granted string) (*fakeProvider, func() []url.Values) {
	p := newProvider(t)
	var mu sync.Mutex
	var seen []url.Values
	p.token = func(w http.ResponseWriter, form url.Values) bool {
		mu.Lock()
		seen = append(seen, form)
		mu.Unlock()
		if form.Has("scope") {
			for _, s := range strings.Fields(form.Get("scope")) {
				if !slices.Contains(strings.Fields(granted), s) {
					jsonError(w, 400, "invalid_scope", "refresh token missing requested scope")
					return true
				}
			}
		}
		scope := granted
		if form.Has("scope") {
			scope = form.Get("scope")
		}
		p.issue(w, true, map[string]any{"scope": scope})
		return true
	}
	return p, func() []url.Values {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// TestRefreshAsksForGranted pins the bug: with offline_access configured
// but not granted, every refresh asked for it, the provider answered
// invalid_scope, and the grant was given up.
func TestRefreshAsksForGranted(t *testing.T) {
	p, seen := scopeProvider(t, "https://mail.example/")
	c := p.client() // configured: https://mail.example/ offline_access
	tok, err := c.RefreshGranted(context.Background(), "rt-old-value", []string{"https://mail.example/"})
	if err != nil {
		t.Fatal(err)
	}
	forms := seen()
	if len(forms) != 1 || forms[0].Get("scope") != "https://mail.example/" {
		t.Fatalf("requests %v, want one asking for the granted scope", forms)
	}
	if !slices.Equal(tok.Scopes, []string{"https://mail.example/"}) {
		t.Errorf("scopes = %q", tok.Scopes)
	}
}

func TestRefreshInvalidScopeRetriesWithoutScope(t *testing.T) {
	p, seen := scopeProvider(t, "https://mail.example/")
	// Granted unknown (an imported refresh token): the configured scopes
	// are refused, the retry without a scope parameter works.
	tok, err := p.client().Refresh(context.Background(), "rt-old-value")
	if err != nil {
		t.Fatal(err)
	}
	forms := seen()
	if len(forms) != 2 || forms[0].Get("scope") != "https://mail.example/ offline_access" || forms[1].Has("scope") {
		t.Fatalf("requests %v, want the configured scopes, then none", forms)
	}
	if forms[0].Get("refresh_token") != "rt-old-value" || forms[1].Get("refresh_token") != "rt-old-value" {
		t.Error("the retry did not use the same refresh token")
	}
	if !slices.Equal(tok.Scopes, []string{"https://mail.example/"}) || tok.RefreshToken == "rt-old-value" {
		t.Errorf("token = %v, want the granted scope and the rotated refresh token", tok)
	}
}

func TestRefreshInvalidScopeScopeRequired(t *testing.T) {
	p, seen := scopeProvider(t, "https://mail.example/")
	c := p.client()
	c.RefreshNeedsScope = true
	if _, err := c.Refresh(context.Background(), "rt-old-value"); err != nil {
		t.Fatal(err)
	}
	forms := seen()
	if len(forms) != 2 || forms[1].Get("scope") != "https://mail.example/" {
		t.Fatalf("requests %v, want the retry without the OpenID scopes", forms)
	}
}

func TestRefreshInvalidScopeOnce(t *testing.T) {
	p, seen := scopeProvider(t, "https://other.example/")
	for _, need := range []bool{false, true} {
		c := p.client()
		c.Config.Scopes = []string{"https://mail.example/", "offline_access"}
		c.RefreshNeedsScope = need
		before := len(seen())
		_, err := c.Refresh(context.Background(), "rt-old-value")
		if need {
			// The retry asks for https://mail.example/ alone: still refused.
			if e := Classify(err); e == nil || e.Code != "invalid_scope" || !e.Permanent() {
				t.Fatalf("need %v: err = %v, want invalid_scope", need, err)
			}
		} else if err != nil {
			t.Fatalf("need %v: %v", need, err) // no scope: what was granted
		}
		if n := len(seen()) - before; n != 2 {
			t.Errorf("need %v: %d requests, want 2 (one retry)", need, n)
		}
	}
}

func TestRefreshNoRetryForOtherErrors(t *testing.T) {
	p := newProvider(t)
	var mu sync.Mutex
	n := 0
	p.token = func(w http.ResponseWriter, form url.Values) bool {
		mu.Lock()
		n++
		mu.Unlock()
		jsonError(w, 400, "invalid_grant", "grant request is invalid")
		return true
	}
	if _, err := p.client().Refresh(context.Background(), "rt-old-value"); Classify(err).Code != "invalid_grant" {
		t.Fatalf("err = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Errorf("%d requests for an invalid_grant, want 1", n)
	}
}

// TestInvalidScopeRetryLeaksNothing: the provider echoes each request,
// secrets included, in its invalid_scope answers; neither the retried
// request's error nor its classification shows one.
func TestInvalidScopeRetryLeaksNothing(t *testing.T) {
	for _, need := range []bool{false, true} {
		p := newProvider(t)
		var mu sync.Mutex
		n := 0
		p.token = func(w http.ResponseWriter, form url.Values) bool {
			mu.Lock()
			n++
			mu.Unlock()
			jsonError(w, 400, "invalid_scope", "scope refused for "+form.Encode())
			return true
		}
		c := p.client()
		c.Config.Endpoint.AuthStyle = 1 // oauth2.AuthStyleInParams: the secret is in the echoed form
		c.RefreshNeedsScope = need
		const rt = "rt-very-secret-refresh"
		_, err := c.RefreshGranted(context.Background(), rt, nil)
		e := Classify(err)
		if e == nil || e.Code != "invalid_scope" {
			t.Fatalf("need %v: err = %v, want invalid_scope", need, err)
		}
		mu.Lock()
		if n != 2 {
			t.Errorf("need %v: %d requests, want 2", need, n)
		}
		mu.Unlock()
		text := fmt.Sprintf("%v %+v %s", err, e, e.Description)
		assertNoSecret(t, "refresh error", text, []string{rt, testSecret})
		if !strings.Contains(text, redacted) {
			t.Errorf("need %v: no redaction marker in %q", need, text)
		}
	}
}
