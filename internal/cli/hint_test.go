package cli

import (
	"path/filepath"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/tokens"
)

// TestHintsNamingCommands: the hints that name a mailkey command for an
// error of package config are the CLI's words.
func TestHintsNamingCommands(t *testing.T) {
	_, missing := config.Load(filepath.Join(t.TempDir(), "none.toml"))
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"missing file", configError(missing), "create it with: mailkey add ACCOUNT --provider PROVIDER --email ADDRESS"},
		{"no accounts", &config.UnknownAccountError{Name: "work", File: "c.toml"}, "add one with: mailkey add work --provider PROVIDER --email ADDRESS"},
		{"a close name", &config.UnknownAccountError{Name: "wrok", File: "c.toml", Known: []string{"work"}}, "did you mean work?"},
		{"another token endpoint", tokenError(&config.Account{Name: "work"}, &tokens.EndpointChangedError{Account: "work", Stored: "https://a.example/token", Configured: "https://b.example/token"}),
			"to use the new endpoint, log in through it: mailkey login work\nor restore the tenant, cloud, issuer or token_url account work had at the login (mailkey config check): the stored login then works again"},
	} {
		if got := hintOf(tt.err); got != tt.want {
			t.Errorf("%s: hint %q, want %q", tt.name, got, tt.want)
		}
	}
}
