package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestPersonalities pins what the provider's Google and Microsoft personalities answer, so
// that the preset tests exercise what those providers really do.
func TestPersonalities(t *testing.T) {
	s := Start(t)
	ctx := testContext(t)
	google := func(redirect string) *oauth2.Config {
		return &oauth2.Config{ClientID: ClientGoogle, ClientSecret: ClientGoogleSecret, RedirectURL: redirect,
			Scopes:   []string{"openid", "email", "https://mail.google.com/"},
			Endpoint: oauth2.Endpoint{AuthURL: s.Issuer + GoogleAuthPath, TokenURL: s.Issuer + GoogleTokenPath, AuthStyle: oauth2.AuthStyleInHeader}}
	}
	// login signs alice in with opts and redeems the code.
	login := func(t *testing.T, cfg *oauth2.Config, opts ...oauth2.AuthCodeOption) *oauth2.Token {
		t.Helper()
		v := oauth2.GenerateVerifier()
		u, err := s.BrowserLogin(ctx, cfg.AuthCodeURL("st", append(opts, oauth2.S256ChallengeOption(v))...), Alice, AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		if e := u.Query().Get("error_description"); e != "" {
			t.Fatalf("authorization: %s", e)
		}
		tok, err := cfg.Exchange(s.Context(ctx), u.Query().Get("code"), oauth2.VerifierOption(v))
		if err != nil {
			t.Fatal(err)
		}
		if c := cfg.Endpoint.AuthURL; strings.Contains(c, "/ms/") && u.Query().Has("iss") {
			t.Errorf("Microsoft's authorization response carries iss: %v", u.Query())
		}
		return tok
	}

	t.Run("google: a refresh token only for access_type=offline with prompt=consent", func(t *testing.T) {
		cfg := google("http://" + ClosedAddr(t) + "/")
		offline := oauth2.SetAuthURLParam("access_type", "offline")
		consent := oauth2.SetAuthURLParam("prompt", "consent")
		for _, c := range []struct {
			name string
			opts []oauth2.AuthCodeOption
			want bool
		}{{"neither", nil, false}, {"access_type only", []oauth2.AuthCodeOption{offline}, false}, {"both", []oauth2.AuthCodeOption{offline, consent}, true}} {
			tok := login(t, cfg, c.opts...)
			if (tok.RefreshToken != "") != c.want {
				t.Errorf("%s: refresh token given = %v, want %v", c.name, tok.RefreshToken != "", c.want)
			}
			if c.want && tok.Extra("refresh_token_expires_in") != float64(GoogleTestingDays*86400) {
				t.Errorf("%s: refresh_token_expires_in = %v, want a Testing app's 7 days", c.name, tok.Extra("refresh_token_expires_in"))
			}
		}
	})

	t.Run("google: Testing-status refresh tokens die after 7 days", func(t *testing.T) {
		cfg := google("http://" + ClosedAddr(t) + "/")
		tok := login(t, cfg, oauth2.SetAuthURLParam("access_type", "offline"), oauth2.SetAuthURLParam("prompt", "consent"))
		refresh := func() error {
			_, err := cfg.TokenSource(s.Context(ctx), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			return err
		}
		if err := s.SetGoogleClock(GoogleTestingDays); err != nil {
			t.Fatal(err)
		}
		defer s.SetGoogleClock(0)
		var re *oauth2.RetrieveError
		if err := refresh(); err == nil || !errors.As(err, &re) || re.ErrorCode != "invalid_grant" || re.ErrorDescription != "Token has been expired or revoked." {
			t.Fatalf("refresh 7 days after the login: %v", err)
		}
		if err := s.SetGoogleClock(GoogleTestingDays - 1); err != nil {
			t.Fatal(err)
		}
		if err := refresh(); err != nil {
			t.Fatalf("refresh 6 days after the login: %v", err)
		}
	})

	t.Run("microsoft: discovery, issuer and claims per tenant", func(t *testing.T) {
		for tenant, want := range map[string]string{
			"common":        s.Issuer + "/ms/{tenantid}/v2.0",
			"organizations": s.Issuer + "/ms/{tenantid}/v2.0",
			"consumers":     s.Issuer + "/ms/" + ConsumerTenant + "/v2.0",
			MicrosoftTenant: s.Issuer + "/ms/" + MicrosoftTenant + "/v2.0",
		} {
			var md struct {
				Issuer string `json:"issuer"`
				Token  string `json:"token_endpoint"`
			}
			resp, err := s.HTTPClient().Get(s.MicrosoftAuthority(tenant) + "/v2.0/.well-known/openid-configuration")
			if err != nil {
				t.Fatal(err)
			}
			err = json.NewDecoder(resp.Body).Decode(&md)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || md.Issuer != want || md.Token != s.MicrosoftAuthority(tenant)+"/oauth2/v2.0/token" {
				t.Errorf("%s: discovery %d %+v (%v), want issuer %s", tenant, resp.StatusCode, md, err, want)
			}
		}
	})

	t.Run("microsoft: ID tokens name the user's tenant", func(t *testing.T) {
		for tenant, tid := range map[string]string{"common": MicrosoftTenant, "consumers": ConsumerTenant} {
			a := s.MicrosoftAuthority(tenant)
			cfg := &oauth2.Config{ClientID: ClientMicrosoft, RedirectURL: "http://" + ClosedAddr(t) + "/", Scopes: []string{"openid", "email", "profile", "offline_access"},
				Endpoint: oauth2.Endpoint{AuthURL: a + "/oauth2/v2.0/authorize", TokenURL: a + "/oauth2/v2.0/token", AuthStyle: oauth2.AuthStyleInParams}}
			raw, _ := login(t, cfg).Extra("id_token").(string)
			parts := strings.Split(raw, ".")
			if len(parts) != 3 {
				t.Fatalf("%s: no ID token", tenant)
			}
			var claims struct {
				Iss               string `json:"iss"`
				Tid               string `json:"tid"`
				PreferredUsername string `json:"preferred_username"`
			}
			if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err != nil || json.Unmarshal(b, &claims) != nil {
				t.Fatalf("%s: ID token payload does not decode", tenant)
			}
			if claims.Iss != s.Issuer+"/ms/"+tid+"/v2.0" || claims.Tid != tid || claims.PreferredUsername != Alice {
				t.Errorf("%s: ID token claims %+v", tenant, claims)
			}
		}
	})

	t.Run("microsoft: AADSTS50194 for a single-tenant app at common", func(t *testing.T) {
		a := s.MicrosoftAuthority("common")
		cfg := &oauth2.Config{ClientID: ClientMicrosoftSingle, RedirectURL: "http://" + ClosedAddr(t) + "/", Scopes: []string{"openid"},
			Endpoint: oauth2.Endpoint{AuthURL: a + "/oauth2/v2.0/authorize", TokenURL: a + "/oauth2/v2.0/token", AuthStyle: oauth2.AuthStyleInParams}}
		u, err := s.BrowserLogin(ctx, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())), Alice, AlicePassword)
		if err != nil {
			t.Fatal(err)
		}
		if q := u.Query(); q.Get("error") != "invalid_request" || !strings.HasPrefix(q.Get("error_description"), "AADSTS50194: ") || q.Get("state") != "st" {
			t.Errorf("redirect %v", q)
		}
		_, err = cfg.TokenSource(s.Context(ctx), &oauth2.Token{RefreshToken: "x"}).Token()
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || !strings.HasPrefix(re.ErrorDescription, "AADSTS50194: ") {
			t.Errorf("token endpoint: %v", err)
		}
	})
}
