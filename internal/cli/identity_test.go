package cli

import (
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/oauth"
	"github.com/mailkey/mailkey/internal/provider"
)

func TestCompareIdentity(t *testing.T) {
	c := &loginCmd{Account: "work"}
	ms := &config.Resolved{Provider: "microsoft", Email: "Alice@Contoso.example"}
	outlook := &config.Resolved{Provider: "outlook", Email: "alice@outlook.example", IdentityTenant: provider.ConsumerTenantID}
	tests := []struct {
		name string
		r    *config.Resolved
		id   oauth.Identity
		want string // who signed in; "" with wantErr
		// wantErr lists what the error must name.
		wantErr []string
	}{
		{"email matches, any case", ms, oauth.Identity{Email: "alice@contoso.example"}, "alice@contoso.example", nil},
		{"sign-in name differs from the address", ms, oauth.Identity{PreferredUsername: "alice@contoso.onmicrosoft.example", Email: "alice@contoso.example"}, "alice@contoso.example", nil},
		{"nothing named", ms, oauth.Identity{Subject: "s"}, "", nil},
		{"another user", ms, oauth.Identity{PreferredUsername: "bob@contoso.example", Email: "bob@contoso.example"}, "", []string{"bob@contoso.example", "Alice@Contoso.example"}},
		{"personal account on outlook", outlook, oauth.Identity{PreferredUsername: "alice@outlook.example", TenantID: provider.ConsumerTenantID}, "alice@outlook.example", nil},
		{"work account on outlook", outlook, oauth.Identity{PreferredUsername: "alice@outlook.example", TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"}, "", []string{"72f988bf-86f1-41af-91ab-2d7cd011db47", "--provider microsoft"}},
	}
	for _, tt := range tests {
		got, err := c.compareIdentity(tt.r, &tt.id)
		if tt.wantErr == nil {
			if err != nil || got != tt.want {
				t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted as %q", tt.name, got)
			continue
		}
		text := err.Error() + "\n" + err.(*Error).Hint
		for _, w := range tt.wantErr {
			if !strings.Contains(text, w) {
				t.Errorf("%s: %q does not name %q", tt.name, text, w)
			}
		}
	}
}
