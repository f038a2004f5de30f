package account

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
	"github.com/mailkey/mailkey/internal/tokens"
)

// TestHTTPClientTrustsCAFile: the provider client verifies TLS against the
// system roots plus ca_file, so a private identity provider is reachable
// only once its CA is named.
func TestHTTPClientTrustsCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()

	plain, err := httpClient("")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := plain.Get(srv.URL); err == nil {
		resp.Body.Close()
		t.Fatal("a server with an unknown CA was trusted without ca_file")
	}

	caFile := filepath.Join(t.TempDir(), "ca.pem")
	block := &pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}
	if err := os.WriteFile(caFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hc, err := httpClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("ca_file not trusted: %v", err)
	}
	resp.Body.Close()
}

func TestHTTPClientBadCAFile(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := httpClient(caFile); err == nil {
		t.Fatal("a ca_file without a certificate was accepted")
	}
	if _, err := httpClient(filepath.Join(t.TempDir(), "missing.pem")); err == nil {
		t.Fatal("a missing ca_file was accepted")
	}
}

// TestRefreshWithoutRefreshTokenNeedsLogin: an interactive account whose
// record holds no refresh token fails permanently, without a request.
func TestRefreshWithoutRefreshTokenNeedsLogin(t *testing.T) {
	s := &Source{R: &config.Resolved{Account: "work", Flow: config.FlowInteractive}}
	_, err := s.Refresh(context.Background(), &store.Record{Account: "work", AccessToken: "at"})
	if !errors.Is(err, ErrNoRefreshToken) {
		t.Fatalf("err = %v, want ErrNoRefreshToken", err)
	}
	var p tokens.Permanenter
	if !errors.As(err, &p) || !p.Permanent() {
		t.Errorf("err = %v is not permanent", err)
	}
}

// TestRefreshAsksForStoredScopes: the source refreshes with the scopes the
// record says were granted, not every configured one (offline_access
// configured but not granted made every refresh fail with invalid_scope).
func TestRefreshAsksForStoredScopes(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		got = append(got, r.PostForm.Get("scope"))
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"at-new-0123","token_type":"Bearer","expires_in":3600,"scope":"openid mail"}`)
	}))
	defer srv.Close()
	r := &config.Resolved{Account: "work", Provider: "generic", Flow: config.FlowInteractive, ClientID: "c", TokenURL: srv.URL + "/token",
		Scopes: []string{"openid", "mail", "offline_access"}}
	c, err := OAuthClient(context.Background(), r, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if c.RefreshNeedsScope {
		t.Error("the generic provider needs no scope on a refresh")
	}
	s := &Source{R: r, Client: c}
	fresh, err := s.Refresh(context.Background(), &store.Record{Account: "work", RefreshToken: "rt-0123", Scopes: []string{"openid", "mail"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "openid mail" {
		t.Errorf("refresh asked for %q, want the granted scopes", got)
	}
	if fresh.AccessToken != "at-new-0123" || fresh.RefreshToken != "rt-0123" {
		t.Errorf("fresh = %+v", fresh)
	}

	ms, err := OAuthClient(context.Background(), &config.Resolved{Provider: "microsoft", Tenant: "contoso.com"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !ms.RefreshNeedsScope {
		t.Error("Microsoft wants a scope on every refresh")
	}
}

// A grant is refreshed only at the token endpoint that issued it: after the
// tenant (or cloud, issuer, token_url) changed, the refresh fails before
// any request, and the refresh token never reaches the new endpoint.
func TestRefreshRefusesAnotherTokenEndpoint(t *testing.T) {
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { requests++ }))
	defer srv.Close()
	r := &config.Resolved{Account: "work", Provider: "generic", Flow: config.FlowInteractive, ClientID: "c", TokenURL: srv.URL + "/fabrikam/token"}
	c, err := OAuthClient(context.Background(), r, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	s := &Source{R: r, Client: c}
	old := srv.URL + "/contoso/token"
	_, err = s.Refresh(context.Background(), &store.Record{Account: "work", RefreshToken: "rt-0123", TokenURL: old})
	var ec *tokens.EndpointChangedError
	if !errors.As(err, &ec) || ec.Stored != old || ec.Configured != r.TokenURL {
		t.Fatalf("err = %v, want *tokens.EndpointChangedError from %s to %s", err, old, r.TokenURL)
	}
	if requests != 0 {
		t.Errorf("%d requests reached the new endpoint", requests)
	}
	if strings.Contains(err.Error(), "rt-0123") || !strings.Contains(err.Error(), old) || !strings.Contains(err.Error(), r.TokenURL) {
		t.Errorf("message %q must name both endpoints and no token", err)
	}
}

// Update keeps an account configured as before (wherever it moved in the file), makes a
// changed one anew, adds new ones and drops removed ones.
func TestSetUpdate(t *testing.T) {
	work := &config.Account{Name: "work", Provider: "fastmail", Email: "a@fastmail.com", Line: 1}
	home := &config.Account{Name: "home", Provider: "fastmail", Email: "b@fastmail.com", Line: 5}
	s := NewSet(context.Background(), []*config.Account{work, home}, nil, nil, nil)
	before := s.Account("work")

	moved := *work
	moved.Line = 9
	changed := *home
	changed.Email = "c@fastmail.com"
	added := &config.Account{Name: "lab", Provider: "fastmail", Email: "d@fastmail.com"}
	s.Update([]*config.Account{&moved, &changed, added})
	if s.Account("work") != before {
		t.Error("an unchanged account was made anew")
	}
	if a := s.Account("home"); a == nil || a.Conf.Email != "c@fastmail.com" {
		t.Errorf("changed account: %+v", a)
	}
	if s.Account("lab") == nil {
		t.Error("added account missing")
	}
	s.Update([]*config.Account{&moved})
	if s.Account("home") != nil || s.Account("lab") != nil {
		t.Error("removed accounts still there")
	}
}
