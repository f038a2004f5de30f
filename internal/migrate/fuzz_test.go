package migrate

import (
	"errors"
	"strings"
	"testing"

	"filippo.io/age"
)

var errNoSecret = errors.New("no secret in fuzzing")

// FuzzRead feeds Read any file: it never panics, and whatever it refuses is
// refused without quoting the token values of the input. The password and
// identity callbacks refuse, so that no key derivation slows the run.
func FuzzRead(f *testing.F) {
	f.Add([]byte(`{"registration": "google", "email": "me@example.com", "refresh_token": "` + testRefresh + `", "access_token_expiration": "2026-12-07T15:04:05"}`))
	f.Add([]byte(proxyConfig(1000)))
	f.Add([]byte("[IMAP-1993]\nserver_address = x\nserver_port = 993\n[a@b]\nrefresh_token = " + testRefresh + "\ntoken_salt = AAAA\n"))
	f.Add([]byte("age-encryption.org/v1\n-> scrypt AAAA 10\nAAAA\n--- AAAA\n"))
	f.Add([]byte("-----BEGIN PGP MESSAGE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, grants, err := Read(data, Options{
			Password:   func(string) (string, error) { return "", errNoSecret },
			Identities: func(bool) ([]age.Identity, error) { return nil, errNoSecret },
		})
		if err != nil {
			if strings.Contains(err.Error(), testRefresh) {
				t.Errorf("error %q quotes a token of the input", err)
			}
			return
		}
		for _, g := range grants {
			if g.Name == "" {
				t.Error("a grant without a name")
			}
		}
	})
}
