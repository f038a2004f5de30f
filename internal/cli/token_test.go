package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// TestTokenErrorClasses pins what each class of refresh failure prints and
// its exit status: a dead grant asks for a login; a rejected client is a
// configuration problem (EX_CONFIG) whose hint names the client secret, not
// a login; a transient failure is EX_TEMPFAIL.
func TestTokenErrorClasses(t *testing.T) {
	conf := &config.Account{Name: "work", Provider: "generic"}
	const secret = "s3cr3t-client-value"
	for _, tc := range []struct {
		name    string
		err     error
		code    int
		want    []string
		wantNot []string
	}{
		{"dead grant", &tokens.NeedsLoginError{Account: "work", Code: "invalid_grant", Reason: "grant request is invalid"}, 0,
			[]string{"mailkey: error: account work needs a new login: invalid_grant", "mailkey: hint: mailkey login work"}, nil},
		{"client rejected", &tokens.ClientConfigError{Account: "work", Code: "invalid_client", Reason: "client authentication failed", Err: errors.New("client_secret=" + secret)}, 78,
			[]string{"mailkey: error: account work: the provider rejected the app's client credentials: invalid_client: client authentication failed",
				"mailkey: hint: check client_secret (or client_secret_cmd) or the certificate of account work", "console", "mailkey test work"},
			[]string{"mailkey login", secret}},
		{"scope refused", &tokens.ClientConfigError{Account: "work", Code: "invalid_scope", Reason: "refresh token missing requested scope"}, 78,
			[]string{"the provider refused the scopes asked for: invalid_scope", "mailkey: hint: check the scopes of account work"},
			[]string{"mailkey login"}},
		{"transient", &tokens.TransientError{Account: "work", Err: errors.New("http 503")}, 75,
			[]string{"token refresh failed"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tokenError(conf, tc.err)
			var ee *Error
			if !errors.As(err, &ee) || ee.Code != tc.code {
				t.Fatalf("tokenError = %#v, want an *Error with exit status %d", err, tc.code)
			}
			var b bytes.Buffer
			report(&b, err)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, w := range tc.wantNot {
				if strings.Contains(b.String(), w) {
					t.Errorf("output holds %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestTokenHints pins the commands the hints of the token lifecycle name:
// a login only for a dead or missing grant, mailkey token once a client's
// configuration is fixed (the login is kept).
func TestTokenHints(t *testing.T) {
	conf := &config.Account{Name: "work", Provider: "generic"}
	for _, tc := range []struct {
		name    string
		err     error
		want    []string
		wantNot string
	}{
		{"no token", &tokens.NeedsLoginError{Account: "work", Err: tokens.ErrNoToken}, []string{"mailkey login work"}, ""},
		{"dead grant", &tokens.NeedsLoginError{Account: "work", Code: "invalid_grant"}, []string{"mailkey login work"}, ""},
		{"client rejected", &tokens.ClientConfigError{Account: "work", Code: "invalid_client"},
			[]string{"client_secret", "client_secret_cmd", "certificate", "account work", "console", "mailkey token work"}, "mailkey login"},
		{"scope refused", &tokens.ClientConfigError{Account: "work", Code: "invalid_scope"},
			[]string{"scopes of account work", "mailkey token work"}, "mailkey login"},
		{"other", errors.New("disk full"), nil, "mailkey"},
	} {
		h := tokenHint(conf, tc.err)
		for _, w := range tc.want {
			if !strings.Contains(h, w) {
				t.Errorf("%s: hint %q lacks %q", tc.name, h, w)
			}
		}
		if tc.wantNot != "" && strings.Contains(h, tc.wantNot) {
			t.Errorf("%s: hint %q holds %q", tc.name, h, tc.wantNot)
		}
		if tc.want == nil && h != "" {
			t.Errorf("%s: hint %q for an error of no known class", tc.name, h)
		}
	}
}

// TestRefreshWarningNamesLogin: a refresh token with a deadline whose
// reason is unknown needs a login after it; Google's Testing limit is
// explained instead.
func TestRefreshWarningNamesLogin(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	other := &store.Record{Account: "x", TokenURL: "https://idp.example/token", RefreshExpiry: now.Add(90 * time.Minute)}
	if w := refreshWarning(other, now); !strings.Contains(w, "in 1h30m") || !strings.HasSuffix(w, "; after that, mailkey login x is needed") {
		t.Errorf("generic warning %q", w)
	}
	google := &store.Record{Account: "g", TokenURL: "https://oauth2.googleapis.com/token", RefreshExpiry: now.Add(time.Hour)}
	if w := refreshWarning(google, now); !strings.Contains(w, `"Testing"`) || strings.Contains(w, "mailkey login") {
		t.Errorf("Google warning %q", w)
	}
	if w := refreshWarning(&store.Record{Account: "x"}, now); w != "" {
		t.Errorf("warning without a deadline: %q", w)
	}
}
