package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/store"
)

// refusingSignIn records the accounts asked for and refuses them all.
type refusingSignIn struct{ asked []string }

func (f *refusingSignIn) Client(_ context.Context, account string) (*oauth.Client, error) {
	f.asked = append(f.asked, account)
	return nil, errors.New("no client for the test")
}

func (f *refusingSignIn) Save(context.Context, string, *oauth.Token) error {
	return errors.New("not reached")
}

// onLoopback makes r look as if it came in on a loopback listener.
func onLoopback(r *http.Request) *http.Request {
	local := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8025}
	return r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
}

// TestSignInCSRF: a POST that the page did not send (no CSRF token, a
// wrong one, another site's Origin, a rebinding Host) is refused with 403
// before anything is asked of the account; the page's own form gets
// through.
func TestSignInCSRF(t *testing.T) {
	rec := &store.Record{Account: "work", NeedsLogin: true, Reason: "invalid_grant: revoked"}
	si := &refusingSignIn{}
	s := &Server{cfg: Config{Store: oneRecord{rec}, SignIn: si}, accts: []*config.Account{{Name: "work"}}}
	h := s.statusHandler()

	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, onLoopback(httptest.NewRequest("GET", "http://127.0.0.1:8025/", nil)))
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rr.Body.String())
	if m == nil || !strings.Contains(rr.Body.String(), "Sign in again") {
		t.Fatalf("page has no sign-in form:\n%s", rr.Body.String())
	}
	csrf := m[1]

	post := func(host string, form url.Values, header map[string]string) int {
		req := httptest.NewRequest("POST", "http://"+host+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, onLoopback(req))
		return rr.Code
	}
	for what, tc := range map[string]struct {
		host   string
		form   url.Values
		header map[string]string
	}{
		"no token":       {"127.0.0.1:8025", url.Values{"account": {"work"}}, nil},
		"wrong token":    {"127.0.0.1:8025", url.Values{"account": {"work"}, "csrf": {"x" + csrf}}, nil},
		"another origin": {"127.0.0.1:8025", url.Values{"account": {"work"}, "csrf": {csrf}}, map[string]string{"Origin": "http://evil.example"}},
		"cross-site":     {"127.0.0.1:8025", url.Values{"account": {"work"}, "csrf": {csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"rebinding host": {"evil.example:8025", url.Values{"account": {"work"}, "csrf": {csrf}}, nil},
	} {
		if code := post(tc.host, tc.form, tc.header); code != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", what, code)
		}
	}
	if len(si.asked) != 0 {
		t.Fatalf("a refused POST reached the account: %v", si.asked)
	}
	if code := post("127.0.0.1:8025", url.Values{"account": {"work"}, "csrf": {csrf}}, map[string]string{"Origin": "http://127.0.0.1:8025", "Sec-Fetch-Site": "same-origin"}); code != http.StatusBadRequest || len(si.asked) != 1 {
		t.Errorf("the page's own POST: %d, asked %v", code, si.asked)
	}

	rr = httptest.NewRecorder()
	h.ServeHTTP(rr, onLoopback(httptest.NewRequest("GET", "http://evil.example:8025/", nil)))
	if rr.Code != http.StatusForbidden || strings.Contains(rr.Body.String(), csrf) {
		t.Errorf("page under a rebinding Host: %d", rr.Code)
	}
	rr = httptest.NewRecorder()
	h.ServeHTTP(rr, onLoopback(httptest.NewRequest("GET", "http://127.0.0.1:8025/?state=forged&code=c", nil)))
	if rr.Code != http.StatusBadRequest || !strings.Contains(rr.Body.String(), "does not belong to a sign-in in progress") {
		t.Errorf("a redirect of no sign-in: %d", rr.Code)
	}
}
