package provider

import (
	"errors"
	"reflect"
	"slices"
	"testing"
)

// TestClouds pins the endpoints, scopes and servers of each Microsoft cloud.
// A change here must be checked against the documentation cited in
// cloud.go.
func TestClouds(t *testing.T) {
	tests := []struct {
		cloud, login, resource, imap, pop3, smtp string
	}{
		{"global", "https://login.microsoftonline.com", "https://outlook.office.com/",
			"outlook.office365.com", "outlook.office365.com", "smtp.office365.com"},
		{"gcc-high", "https://login.microsoftonline.us", "https://outlook.office365.us/",
			"outlook.office365.us", "outlook.office365.us", "smtp.office365.us"},
		{"dod", "https://login.microsoftonline.us", "https://outlook-dod.office365.us/",
			"outlook-dod.office365.us", "outlook-dod.office365.us", "outlook-dod.office365.us"},
		{"china", "https://login.partner.microsoftonline.cn", "https://partner.outlook.cn/",
			"partner.outlook.cn", "partner.outlook.cn", "smtp.partner.outlook.cn"},
	}
	ms, err := Lookup("microsoft")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.cloud)
	}
	if got := ms.CloudNames(); !slices.Equal(got, names) {
		t.Fatalf("CloudNames() = %v, want %v", got, names)
	}
	for _, tt := range tests {
		t.Run(tt.cloud, func(t *testing.T) {
			p, err := ms.InCloud(tt.cloud)
			if err != nil {
				t.Fatal(err)
			}
			r, err := p.Resolve("contoso.onmicrosoft.com")
			if err != nil {
				t.Fatal(err)
			}
			appOnly := tt.resource
			if tt.cloud == "global" {
				appOnly = "https://outlook.office365.com/"
			}
			authority := tt.login + "/contoso.onmicrosoft.com"
			got := map[string]any{
				"cloud": r.Cloud, "issuer": r.Issuer,
				"auth": r.AuthURL, "token": r.TokenURL, "device": r.DeviceURL,
				"scopes": r.ScopesFor(), "app-only": r.AppOnlyScopes, "servers": r.Servers,
			}
			want := map[string]any{
				"cloud": tt.cloud, "issuer": authority + "/v2.0",
				"auth":   authority + "/oauth2/v2.0/authorize",
				"token":  authority + "/oauth2/v2.0/token",
				"device": authority + "/oauth2/v2.0/devicecode",
				"scopes": []string{"offline_access", "openid", "email", "profile",
					tt.resource + "IMAP.AccessAsUser.All", tt.resource + "POP.AccessAsUser.All", tt.resource + "SMTP.Send"},
				"app-only": []string{appOnly + ".default"},
				"servers": map[Protocol]string{
					IMAP: "imaps://" + tt.imap + ":993",
					POP3: "pop3s://" + tt.pop3 + ":995",
					SMTP: "smtp://" + tt.smtp + ":587",
				},
			}
			for k := range want {
				if !reflect.DeepEqual(got[k], want[k]) {
					t.Errorf("%s = %v, want %v", k, got[k], want[k])
				}
			}
			for proto, u := range r.Servers {
				if _, err := ParseServer(proto, u); err != nil {
					t.Errorf("%s server %q: %v", proto, u, err)
				}
			}
			// Everything but the cloud's data stays the preset's.
			p.Cloud, p.Issuer, p.AuthURL, p.TokenURL, p.DeviceURL = ms.Cloud, ms.Issuer, ms.AuthURL, ms.TokenURL, ms.DeviceURL
			p.Scopes, p.AppOnlyScopes, p.Servers = ms.Scopes, ms.AppOnlyScopes, ms.Servers
			if !reflect.DeepEqual(p, ms) {
				t.Errorf("InCloud changed more than the cloud's data:\n got %+v\nwant %+v", p, ms)
			}
		})
	}
}

func TestInCloudEmptyIsTheDefault(t *testing.T) {
	ms, _ := Lookup("microsoft")
	p, err := ms.InCloud("")
	if err != nil || !reflect.DeepEqual(p, ms) {
		t.Fatalf("InCloud(\"\") = %+v, %v; want the preset unchanged", p, err)
	}
}

func TestInCloudRefusals(t *testing.T) {
	tests := []struct {
		provider, cloud string
		valid           []string
		msg             string
	}{
		{"microsoft", "usgov", []string{"global", "gcc-high", "dod", "china"},
			`unknown cloud "usgov" for provider microsoft (valid: global, gcc-high, dod, china)`},
		{"outlook", "gcc-high", nil, "provider outlook has no national clouds"},
		{"google", "china", nil, "provider google has no national clouds"},
	}
	for _, tt := range tests {
		p, _ := Lookup(tt.provider)
		_, err := p.InCloud(tt.cloud)
		var ce *UnknownCloudError
		if !errors.As(err, &ce) || !slices.Equal(ce.Valid, tt.valid) || err.Error() != tt.msg {
			t.Errorf("%s.InCloud(%q) = %v, want %q", tt.provider, tt.cloud, err, tt.msg)
		}
	}
}

func TestTenantToChoose(t *testing.T) {
	for name, want := range map[string]bool{"microsoft": true, "outlook": false, "google": false, "generic": false} {
		if p, _ := Lookup(name); p.TenantToChoose() != want {
			t.Errorf("%s: TenantToChoose() = %v, want %v", name, !want, want)
		}
	}
}
