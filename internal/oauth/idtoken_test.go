package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

// oidcServer serves discovery and a JWKS for issuer paths, and signs ID tokens.
type oidcServer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

// newOIDCServer publishes discovery at base+path; issuer is what the document
// names ("" = base+path).
func newOIDCServer(t *testing.T, path, issuer string) *oidcServer {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	o := &oidcServer{key: key}
	mux := http.NewServeMux()
	o.srv = httptest.NewServer(mux)
	t.Cleanup(o.srv.Close)
	if issuer == "" {
		issuer = o.srv.URL + path
	}
	issuer = strings.ReplaceAll(issuer, "BASE", o.srv.URL)
	mux.HandleFunc(path+"/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": issuer, "jwks_uri": o.srv.URL + "/jwks",
			"authorization_endpoint": o.srv.URL + "/authorize", "token_endpoint": o.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"userinfo_endpoint":                     o.srv.URL + "/userinfo",
		})
	})
	mux.HandleFunc("/userinfo", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-for-"+r.URL.Query().Get("sub") && r.Header.Get("Authorization") != "Bearer good-access-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"sub": "user-1", "email": "who@example.com", "email_verified": true})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	return o
}

func (o *oidcServer) sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestVerifyIDToken(t *testing.T) {
	o := newOIDCServer(t, "", "")
	c := &Client{Issuer: o.srv.URL}
	c.Config.ClientID = "client-id"
	now := time.Now()
	good := map[string]any{"iss": o.srv.URL, "aud": "client-id", "sub": "u1", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"email": "user@example.com", "email_verified": true, "name": "A User", "preferred_username": "user@example.com"}
	id, err := c.VerifyIDToken(context.Background(), o.sign(t, o.key, good), "")
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "user@example.com" || !id.EmailVerified || id.Subject != "u1" || id.Name != "A User" || id.PreferredUsername != "user@example.com" {
		t.Errorf("identity = %+v", id)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		m[k] = v
		return m
	}
	for name, raw := range map[string]string{
		"wrong audience": o.sign(t, o.key, with("aud", "someone-else")),
		"wrong issuer":   o.sign(t, o.key, with("iss", "https://evil.example")),
		"expired":        o.sign(t, o.key, with("exp", now.Add(-time.Hour).Unix())),
		"wrong key":      o.sign(t, other, good),
		"garbage":        "not.a.jwt",
	} {
		_, err := c.VerifyIDToken(context.Background(), raw, "")
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		assertNoSecret(t, name, err.Error(), []string{raw})
	}
	// The nonce the login sent must come back (Core §3.1.3.7 step 11).
	if _, err := c.VerifyIDToken(context.Background(), o.sign(t, o.key, with("nonce", "n-1")), "n-1"); err != nil {
		t.Errorf("matching nonce: %v", err)
	}
	for name, raw := range map[string]string{
		"other nonce": o.sign(t, o.key, with("nonce", "n-2")),
		"no nonce":    o.sign(t, o.key, good),
	} {
		if _, err := c.VerifyIDToken(context.Background(), raw, "n-1"); !errors.Is(err, ErrNonceMismatch) {
			t.Errorf("%s: err = %v, want ErrNonceMismatch", name, err)
		}
	}
	if _, err := (&Client{}).VerifyIDToken(context.Background(), "x", ""); err == nil {
		t.Error("no issuer: accepted")
	}
}

func TestVerifyIDTokenMultiTenant(t *testing.T) {
	o := newOIDCServer(t, "/common/v2.0", "BASE/{tenantid}/v2.0")
	c := &Client{Issuer: o.srv.URL + "/common/v2.0", MultiTenantIssuer: true}
	c.Config.ClientID = "client-id"
	now := time.Now()
	claims := func(iss, tid string) map[string]any {
		return map[string]any{"iss": iss, "tid": tid, "aud": "client-id", "sub": "u1", "exp": now.Add(time.Hour).Unix(),
			"iat": now.Unix(), "preferred_username": "user@contoso.example"}
	}
	id, err := c.VerifyIDToken(context.Background(), o.sign(t, o.key, claims(o.srv.URL+"/tenant-a/v2.0", "tenant-a")), "")
	if err != nil {
		t.Fatal(err)
	}
	if id.TenantID != "tenant-a" || id.PreferredUsername != "user@contoso.example" {
		t.Errorf("identity = %+v", id)
	}
	for name, cl := range map[string]map[string]any{
		"tid mismatch": claims(o.srv.URL+"/tenant-a/v2.0", "tenant-b"),
		"no tid":       claims(o.srv.URL+"/tenant-a/v2.0", ""),
		"other host":   claims("https://evil.example/tenant-a/v2.0", "tenant-a"),
	} {
		if _, err := c.VerifyIDToken(context.Background(), o.sign(t, o.key, cl), ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Without the option, discovery's issuer does not match and nothing verifies.
	c.MultiTenantIssuer = false
	if _, err := c.VerifyIDToken(context.Background(), o.sign(t, o.key, claims(o.srv.URL+"/tenant-a/v2.0", "tenant-a")), ""); err == nil {
		t.Error("multi-tenant token accepted without MultiTenantIssuer")
	}
}

func TestIssuerParamMultiTenant(t *testing.T) {
	c := &Client{Issuer: "https://login.microsoftonline.com/common/v2.0", MultiTenantIssuer: true}
	if !c.issuerMatches("https://login.microsoftonline.com/72f988bf/v2.0") {
		t.Error("tenant issuer refused")
	}
	if c.issuerMatches("https://evil.example/72f988bf/v2.0") {
		t.Error("other host accepted")
	}
	c.MultiTenantIssuer = false
	if c.issuerMatches("https://login.microsoftonline.com/72f988bf/v2.0") {
		t.Error("inexact issuer accepted without MultiTenantIssuer")
	}
}

// A provider that follows OpenID Connect Core §5.4 strictly puts email only in
// UserInfo: Identify must find it there, or the wrong-account check is skipped.
func TestIdentifyUserInfo(t *testing.T) {
	o := newOIDCServer(t, "", "")
	c := &Client{Issuer: o.srv.URL}
	c.Config.ClientID = "cid"
	now := time.Now()
	idToken := func(sub string) string {
		return o.sign(t, o.key, map[string]any{"iss": o.srv.URL, "aud": "cid", "sub": sub, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	}
	tok := &Token{IDToken: idToken("user-1")}
	tok.AccessToken = "good-access-token"
	id, err := c.Identify(context.Background(), tok)
	if err != nil || id.Email != "who@example.com" || !id.EmailVerified {
		t.Fatalf("Identify = %+v, %v; want the email from userinfo", id, err)
	}

	tok.IDToken = idToken("user-2")
	if _, err := c.Identify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "another subject") {
		t.Fatalf("userinfo for another subject: %v", err)
	}

	tok.IDToken, tok.AccessToken = idToken("user-1"), "rejected-access-token"
	_, err = c.Identify(context.Background(), tok)
	if err == nil || strings.Contains(err.Error(), "rejected-access-token") {
		t.Fatalf("refused userinfo: %v", err)
	}
}
