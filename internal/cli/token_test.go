package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
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
