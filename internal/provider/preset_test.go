package provider

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNames(t *testing.T) {
	want := []string{"google", "microsoft", "outlook", "yahoo", "aol", "fastmail", "generic"}
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
}

// TestPresetFacts pins every provider fact mailkey relies on. A change here
// must be checked against the provider's own documentation.
func TestPresetFacts(t *testing.T) {
	ms := func(name, title, tenant, smtp, appOnlyCheck, tid string) Preset {
		return Preset{
			Name: name, Title: title, Cloud: "global",
			Issuer:        "https://login.microsoftonline.com/{tenant}/v2.0",
			AuthURL:       "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
			TokenURL:      "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
			DeviceURL:     "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
			Tenanted:      true,
			DefaultTenant: tenant,
			Scopes: map[Protocol][]string{
				IMAP: {"https://outlook.office.com/IMAP.AccessAsUser.All"},
				POP3: {"https://outlook.office.com/POP.AccessAsUser.All"},
				SMTP: {"https://outlook.office.com/SMTP.Send"},
			},
			BaseScopes:     []string{"offline_access"},
			IdentityScopes: []string{"openid", "email", "profile"},
			IdentityTenant: tid,
			AppOnlyScopes:  []string{"https://outlook.office365.com/.default"},
			Servers: map[Protocol]string{
				IMAP: "imaps://outlook.office365.com:993",
				POP3: "pop3s://outlook.office365.com:995",
				SMTP: "smtp://" + smtp + ":587",
			},
			PreferSASL: "xoauth2", OAuthBearer: false,
			DeviceFlow: true, RefreshNeedsScope: true, AppOnlyCheck: appOnlyCheck,
			IdleLimit: 90 * 24 * time.Hour, IdleLimitSource: "https://learn.microsoft.com/entra/identity-platform/refresh-tokens#token-lifetime",
			RevokeHelp: "to revoke them, remove the app at https://myapps.microsoft.com (or an admin runs Revoke-MgUserSignInSession)",
		}
	}
	yahoo := func(name, title, auth, token, imap, pop, smtp string) Preset {
		return Preset{
			Name: name, Title: title, AuthURL: auth, TokenURL: token,
			Scopes:     map[Protocol][]string{IMAP: {"mail-w"}, POP3: {"mail-w"}, SMTP: {"mail-w"}},
			Servers:    map[Protocol]string{IMAP: imap, POP3: pop, SMTP: smtp},
			PreferSASL: "xoauth2", OAuthBearer: true,
			IdentityByMailLogin: true,
		}
	}
	tests := []Preset{
		{
			Name: "google", Title: "Google (Gmail, Google Workspace)",
			Issuer:         "https://accounts.google.com",
			AuthURL:        "https://accounts.google.com/o/oauth2/v2/auth",
			TokenURL:       "https://oauth2.googleapis.com/token",
			RevokeURL:      "https://oauth2.googleapis.com/revoke",
			IdentityScopes: []string{"openid", "email"},
			Scopes: map[Protocol][]string{
				IMAP: {"https://mail.google.com/"}, POP3: {"https://mail.google.com/"}, SMTP: {"https://mail.google.com/"},
			},
			Servers: map[Protocol]string{
				IMAP: "imaps://imap.gmail.com:993", POP3: "pop3s://pop.gmail.com:995", SMTP: "smtps://smtp.gmail.com:465",
			},
			PreferSASL: "xoauth2", OAuthBearer: true,
			DeviceFlow: false, DeviceRejectsScopes: true,
			NoClientCredentials: true, ServiceAccounts: true,
			RefreshLimit: `Google limits refresh tokens of apps in "Testing" status to 7 days; ` +
				`set the OAuth consent screen's publishing status to "In production" for lasting tokens`,
			IdleLimit: 182 * 24 * time.Hour, IdleLimitSource: "https://developers.google.com/identity/protocols/oauth2#expiration",
			AuthParams: map[string]string{"access_type": "offline", "prompt": "consent"},
		},
		ms("microsoft", "Microsoft 365 (Exchange Online)", "common", "smtp.office365.com",
			"check the app's client secret or certificate, its Office 365 Exchange Online application permissions (IMAP.AccessAsApp, POP.AccessAsApp, SMTP.SendAsApp) with admin consent, and the Exchange service principal's access to {email} (docs/providers/microsoft.md)", ""),
		ms("outlook", "Outlook.com (personal Microsoft accounts)", "consumers", "smtp-mail.outlook.com", "", "9188040d-6c67-4c5b-b112-36a304b66dad"),
		yahoo("yahoo", "Yahoo Mail",
			"https://api.login.yahoo.com/oauth2/request_auth", "https://api.login.yahoo.com/oauth2/get_token",
			"imaps://imap.mail.yahoo.com:993", "pop3s://pop.mail.yahoo.com:995", "smtps://smtp.mail.yahoo.com:465"),
		yahoo("aol", "AOL Mail",
			"https://api.login.aol.com/oauth2/request_auth", "https://api.login.aol.com/oauth2/get_token",
			"imaps://imap.aol.com:993", "pop3s://pop.aol.com:995", "smtps://smtp.aol.com:465"),
		{
			Name: "fastmail", Title: "Fastmail",
			Issuer:   "https://api.fastmail.com",
			AuthURL:  "https://api.fastmail.com/oauth/authorize",
			TokenURL: "https://api.fastmail.com/oauth/refresh",
			Scopes: map[Protocol][]string{
				IMAP: {"https://www.fastmail.com/dev/protocol-imap"},
				POP3: {"https://www.fastmail.com/dev/protocol-pop"},
				SMTP: {"https://www.fastmail.com/dev/protocol-smtp"},
			},
			Servers: map[Protocol]string{
				IMAP: "imaps://imap.fastmail.com:993", POP3: "pop3s://pop.fastmail.com:995", SMTP: "smtps://smtp.fastmail.com:465",
			},
			PreferSASL: "xoauth2", OAuthBearer: true, RequirePKCE: true,
			IdentityByMailLogin: true,
		},
		{
			Name: "generic", Title: "any OAuth 2.0 provider (endpoints from issuer discovery or set by hand)",
			PreferSASL: "xoauth2", OAuthBearer: true, DeviceFlow: true, ServiceAccounts: true,
		},
	}
	for _, want := range tests {
		t.Run(want.Name, func(t *testing.T) {
			got, err := Lookup(want.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got.DeviceFlow == (got.DeviceRefusal != "") && got.Name != "generic" {
				t.Errorf("DeviceFlow=%v but DeviceRefusal=%q: a refusal must explain every disabled device flow", got.DeviceFlow, got.DeviceRefusal)
			}
			if len(got.Notes) == 0 {
				t.Errorf("no notes")
			}
			// Free text is checked above; everything else must match
			// exactly. The other clouds are pinned by TestClouds.
			got.Notes, got.DeviceRefusal, got.Clouds = nil, "", nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("preset differs\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestGoogleDeviceRefusalNamesAlternatives(t *testing.T) {
	p, _ := Lookup("google")
	for _, w := range []string{"invalid_scope", "loopback", "--paste"} {
		if !strings.Contains(p.DeviceRefusal, w) {
			t.Errorf("DeviceRefusal %q does not mention %q", p.DeviceRefusal, w)
		}
	}
}

func TestPresetServersParse(t *testing.T) {
	for _, name := range Names() {
		p, _ := Lookup(name)
		for proto, s := range p.Servers {
			srv, err := ParseServer(proto, s)
			if err != nil {
				t.Errorf("%s %s: %v", name, proto, err)
				continue
			}
			if srv.String() != s {
				t.Errorf("%s %s: %q is not canonical (%q)", name, proto, s, srv.String())
			}
		}
		r, err := p.Resolve("")
		if err != nil {
			t.Fatalf("%s: Resolve: %v", name, err)
		}
		for _, u := range []string{r.Issuer, r.AuthURL, r.TokenURL, r.DeviceURL, r.RevokeURL} {
			if u == "" {
				continue
			}
			if err := CheckEndpoint(u); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			if strings.Contains(u, "{") {
				t.Errorf("%s: unresolved placeholder in %s", name, u)
			}
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("gmail")
	var ue *UnknownProviderError
	if !errors.As(err, &ue) || ue.Name != "gmail" {
		t.Fatalf("Lookup(gmail) = %v, want *UnknownProviderError", err)
	}
	if !strings.Contains(err.Error(), "google, microsoft, outlook, yahoo, aol, fastmail, generic") {
		t.Errorf("error does not list valid names: %v", err)
	}
}

func TestLookupReturnsCopy(t *testing.T) {
	p, _ := Lookup("microsoft")
	p.Scopes[IMAP][0] = "changed"
	p.Servers[SMTP] = "changed"
	p.BaseScopes[0] = "changed"
	q, _ := Lookup("microsoft")
	if q.Scopes[IMAP][0] == "changed" || q.Servers[SMTP] == "changed" || q.BaseScopes[0] == "changed" {
		t.Fatal("Lookup shares state between callers")
	}
}

func TestResolveTenant(t *testing.T) {
	tests := []struct {
		provider, tenant string
		wantToken        string
		wantErr          bool
	}{
		{"microsoft", "", "https://login.microsoftonline.com/common/oauth2/v2.0/token", false},
		{"outlook", "", "https://login.microsoftonline.com/consumers/oauth2/v2.0/token", false},
		{"microsoft", "organizations", "https://login.microsoftonline.com/organizations/oauth2/v2.0/token", false},
		{"microsoft", "contoso.onmicrosoft.com", "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token", false},
		{"microsoft", "72f988bf-86f1-41af-91ab-2d7cd011db47", "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token", false},
		{"microsoft", "contoso", "", true},
		{"microsoft", "../evil", "", true},
		{"microsoft", "a/b.com", "", true},
		{"google", "contoso.com", "", true},
		{"google", "", "https://oauth2.googleapis.com/token", false},
	}
	for _, tt := range tests {
		p, _ := Lookup(tt.provider)
		r, err := p.Resolve(tt.tenant)
		if tt.wantErr {
			var te *InvalidTenantError
			if !errors.As(err, &te) {
				t.Errorf("%s %q: err = %v, want *InvalidTenantError", tt.provider, tt.tenant, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %q: %v", tt.provider, tt.tenant, err)
			continue
		}
		if r.TokenURL != tt.wantToken {
			t.Errorf("%s %q: TokenURL = %s, want %s", tt.provider, tt.tenant, r.TokenURL, tt.wantToken)
		}
		if strings.Contains(r.AuthURL+r.DeviceURL+r.Issuer, "{tenant}") {
			t.Errorf("%s %q: placeholder left: %+v", tt.provider, tt.tenant, r)
		}
	}
	// Resolve must not change the preset it was called on.
	p, _ := Lookup("microsoft")
	_, _ = p.Resolve("consumers")
	if !strings.Contains(p.TokenURL, "{tenant}") {
		t.Fatal("Resolve changed its receiver")
	}
}

func TestValidTenant(t *testing.T) {
	valid := []string{"common", "organizations", "consumers", "Common",
		"72f988bf-86f1-41af-91ab-2d7cd011db47", "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
		"contoso.onmicrosoft.com", "example.co.uk", "x-y.example"}
	invalid := []string{"", "contoso", "72f988bf86f141af91ab2d7cd011db47", "72f988bf-86f1-41af-91ab-2d7cd011db4g",
		"-bad.com", "bad-.com", "a..b", "a b.com", "a/b.com", "..", "ex ample.com", "common/x",
		strings.Repeat("a", 64) + ".com"}
	for _, s := range valid {
		if !ValidTenant(s) {
			t.Errorf("ValidTenant(%q) = false", s)
		}
	}
	for _, s := range invalid {
		if ValidTenant(s) {
			t.Errorf("ValidTenant(%q) = true", s)
		}
	}
}

func TestScopesFor(t *testing.T) {
	ms, _ := Lookup("microsoft")
	g, _ := Lookup("google")
	gen, _ := Lookup("generic")
	tests := []struct {
		p      Preset
		protos []Protocol
		want   []string
	}{
		{ms, []Protocol{IMAP}, []string{"offline_access", "openid", "email", "profile", "https://outlook.office.com/IMAP.AccessAsUser.All"}},
		{ms, []Protocol{SMTP, IMAP}, []string{"offline_access", "openid", "email", "profile", "https://outlook.office.com/SMTP.Send", "https://outlook.office.com/IMAP.AccessAsUser.All"}},
		{ms, nil, []string{"offline_access", "openid", "email", "profile", "https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/POP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send"}},
		{ms, []Protocol{POP3, POP3}, []string{"offline_access", "openid", "email", "profile", "https://outlook.office.com/POP.AccessAsUser.All"}},
		{g, []Protocol{IMAP, POP3, SMTP}, []string{"openid", "email", "https://mail.google.com/"}},
		{gen, []Protocol{IMAP}, nil},
	}
	for _, tt := range tests {
		if got := tt.p.ScopesFor(tt.protos...); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s.ScopesFor(%v) = %q, want %q", tt.p.Name, tt.protos, got, tt.want)
		}
	}
}

func TestParseProtocol(t *testing.T) {
	for _, p := range Protocols {
		if got, err := ParseProtocol(string(p)); err != nil || got != p {
			t.Errorf("ParseProtocol(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParseProtocol("pop"); err == nil || !strings.Contains(err.Error(), "imap, pop3, smtp") {
		t.Errorf("ParseProtocol(pop) = %v", err)
	}
}
