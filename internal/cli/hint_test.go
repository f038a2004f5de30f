package cli

import (
	"path/filepath"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
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
	} {
		if got := hintOf(tt.err); got != tt.want {
			t.Errorf("%s: hint %q, want %q", tt.name, got, tt.want)
		}
	}
}
