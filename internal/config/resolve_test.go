package config

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/provider"
)

func loadOne(t *testing.T, doc string) *Account {
	t.Helper()
	path := writeFile(t, t.TempDir(), "config.toml", dedent(doc))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Accounts[0]
}

func TestResolveMicrosoftLeastPrivilege(t *testing.T) {
	a := loadOne(t, `
		[accounts.work]
		provider = "microsoft"
		email = "a@contoso.com"
		client_id = "cid"
		tenant = "contoso.onmicrosoft.com"
		imap = "imaps://outlook.office365.com:993"
	`)
	r, err := a.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"offline_access", "openid", "email", "profile", "https://outlook.office.com/IMAP.AccessAsUser.All"}; !reflect.DeepEqual(r.Scopes, want) {
		t.Errorf("Scopes = %q, want %q", r.Scopes, want)
	}
	if r.TokenURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" ||
		r.DeviceURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode" ||
		r.Tenant != "contoso.onmicrosoft.com" {
		t.Errorf("resolved = %+v", r)
	}
	if r.SASL != "xoauth2" || r.OAuthBearer || !r.DeviceAllowed || r.DeviceRefusal != "" {
		t.Errorf("resolved = %+v", r)
	}
	if r.RevokeURL != "" {
		t.Errorf("RevokeURL = %q: Microsoft has no revocation endpoint", r.RevokeURL)
	}
}

// A national cloud brings its own login host, scopes and servers; the
// account's own settings still win.
func TestResolveMicrosoftCloud(t *testing.T) {
	a := loadOne(t, `
		[accounts.work]
		provider = "microsoft"
		email = "a@agency.us"
		client_id = "cid"
		tenant = "agency.onmicrosoft.us"
		cloud = "gcc-high"
		protocols = ["imap", "smtp"]
		smtp = "smtp://smtp.agency.us:587"
	`)
	r, err := a.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"offline_access", "openid", "email", "profile", "https://outlook.office365.us/IMAP.AccessAsUser.All", "https://outlook.office365.us/SMTP.Send"}
	if !reflect.DeepEqual(r.Scopes, want) {
		t.Errorf("Scopes = %q, want %q", r.Scopes, want)
	}
	if r.Cloud != "gcc-high" || r.TokenURL != "https://login.microsoftonline.us/agency.onmicrosoft.us/oauth2/v2.0/token" {
		t.Errorf("resolved = %+v", r)
	}
	if got := r.Servers[provider.IMAP].String(); got != "imaps://outlook.office365.us:993" {
		t.Errorf("IMAP server = %s, want the cloud's", got)
	}
	if got := r.Servers[provider.SMTP].String(); got != "smtp://smtp.agency.us:587" {
		t.Errorf("SMTP server = %s, want the account's", got)
	}
}

func TestResolveMicrosoftAppOnly(t *testing.T) {
	a := loadOne(t, `
		[accounts.svc]
		provider = "microsoft"
		email = "shared@contoso.com"
		client_id = "cid"
		client_secret_cmd = "printf 'from-cmd\nsecond line\n'"
		tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		flow = "client_credentials"
	`)
	r, err := a.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://outlook.office365.com/.default"}; !reflect.DeepEqual(r.Scopes, want) {
		t.Errorf("Scopes = %q", r.Scopes)
	}
	if r.DeviceAllowed || !strings.Contains(r.DeviceRefusal, "client_credentials") {
		t.Errorf("device: %v %q", r.DeviceAllowed, r.DeviceRefusal)
	}
	if runtime.GOOS == "windows" {
		return
	}
	if !r.HasSecret() {
		t.Error("HasSecret = false")
	}
	s, err := r.Secret(context.Background())
	if err != nil || s != "from-cmd" {
		t.Errorf("Secret = %q, %v", s, err)
	}
}

func TestResolveGoogle(t *testing.T) {
	a := loadOne(t, `
		[accounts.g]
		provider = "google"
		email = "me@gmail.com"
		client_id = "cid"
		client_secret = "inline"
		sasl = "oauthbearer"
	`)
	r, err := a.Resolve(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Scopes, []string{"openid", "email", "https://mail.google.com/"}) || r.SASL != "oauthbearer" {
		t.Errorf("resolved = %+v", r)
	}
	if r.DeviceAllowed || !strings.Contains(r.DeviceRefusal, "invalid_scope") {
		t.Errorf("device: %v %q", r.DeviceAllowed, r.DeviceRefusal)
	}
	if r.AuthParams["access_type"] != "offline" || r.AuthParams["prompt"] != "consent" {
		t.Errorf("AuthParams = %v", r.AuthParams)
	}
	if len(r.Servers) != 3 || r.Servers[provider.POP3].String() != "pop3s://pop.gmail.com:995" {
		t.Errorf("Servers = %v", r.Servers)
	}
	if s, _ := r.Secret(context.Background()); s != "inline" {
		t.Errorf("Secret = %q", s)
	}
}

func TestResolveScopeOverrideAndServiceAccount(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "sa.json", `{"type":"service_account"}`)
	path := writeFile(t, dir, "config.toml", dedent(`
		[accounts.a]
		provider = "microsoft"
		email = "a@contoso.com"
		client_id = "cid"
		scopes = ["custom", "offline_access"]
		[accounts.sa]
		provider = "google"
		email = "box@corp.example"
		flow = "service_account"
		service_account_file = "sa.json"
		protocols = ["imap"]
	`))
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := cfg.Accounts[0].Resolve(context.Background(), nil)
	if err != nil || !reflect.DeepEqual(r.Scopes, []string{"custom", "offline_access"}) {
		t.Errorf("Scopes = %q, %v", r.Scopes, err)
	}
	r, err = cfg.Accounts[1].Resolve(context.Background(), nil)
	if err != nil || !reflect.DeepEqual(r.Scopes, []string{"https://mail.google.com/"}) {
		t.Errorf("Scopes = %q, %v", r.Scopes, err)
	}
	if r.ClientID != "" || r.ServiceAccountFile == "" {
		t.Errorf("resolved = %+v", r)
	}
}

func TestResolveGenericDiscovery(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		iss := "http://" + r.Host
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                        iss,
			"authorization_endpoint":        iss + "/auth",
			"token_endpoint":                iss + "/token",
			"device_authorization_endpoint": iss + "/device",
			"revocation_endpoint":           iss + "/revoke",
			"introspection_endpoint":        iss + "/introspect",
			"authorization_response_iss_parameter_supported": true,
		})
	}))
	defer srv.Close()
	a := loadOne(t, `
		[accounts.lab]
		provider = "generic"
		email = "lab@example.test"
		client_id = "cid"
		issuer = "`+srv.URL+`"
		token_url = "`+srv.URL+`/other-token"
		scopes = ["openid", "offline_access", "email"]
		imap = "imap://127.0.0.1:10143"
		smtp = "smtp://127.0.0.1:10587"
	`)
	r, err := a.Resolve(context.Background(), srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"issuer": srv.URL, "auth": srv.URL + "/auth", "token": srv.URL + "/other-token",
		"device": srv.URL + "/device", "revoke": srv.URL + "/revoke", "introspect": srv.URL + "/introspect",
	}
	got := map[string]string{
		"issuer": r.Issuer, "auth": r.AuthURL, "token": r.TokenURL,
		"device": r.DeviceURL, "revoke": r.RevokeURL, "introspect": r.IntrospectURL,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("endpoints = %v\nwant %v", got, want)
	}
	if !r.IssParameter || !r.DeviceAllowed || r.SASL != "xoauth2" {
		t.Errorf("resolved = %+v", r)
	}
	if !reflect.DeepEqual(r.Protocols, []provider.Protocol{provider.IMAP, provider.SMTP}) {
		t.Errorf("Protocols = %v", r.Protocols)
	}
	if r.HasSecret() {
		t.Error("HasSecret = true without a secret")
	}
}

func TestResolveDiscoveryFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	a := loadOne(t, `
		[accounts.lab]
		provider = "generic"
		email = "lab@example.test"
		client_id = "cid"
		issuer = "`+srv.URL+`"
	`)
	_, err := a.Resolve(context.Background(), srv.Client())
	if !errors.Is(err, provider.ErrNoMetadata) || !strings.Contains(err.Error(), "account lab") {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretCmdErrorsHideOutput(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses sh")
	}
	for _, cmd := range []string{"echo leaked-secret; echo leaked-secret >&2; exit 3", "printf ''", "exec /nonexistent/leaked-secret"} {
		r := &Resolved{clientSecretCmd: cmd}
		s, err := r.Secret(context.Background())
		if !errors.Is(err, ErrSecretCmd) {
			t.Errorf("%q: Secret = %q, %v; want ErrSecretCmd", cmd, s, err)
			continue
		}
		if strings.Contains(err.Error(), "leaked-secret") {
			t.Errorf("%q: error shows output: %v", cmd, err)
		}
	}
}
