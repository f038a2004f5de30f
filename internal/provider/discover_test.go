package provider

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// metadataServer serves doc(issuer) at the given well-known paths and
// records every path asked for.
type metadataServer struct {
	*httptest.Server
	mu    sync.Mutex
	asked []string
}

func newMetadataServer(t *testing.T, paths map[string]func(issuer string) any) *metadataServer {
	t.Helper()
	ms := &metadataServer{}
	ms.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ms.mu.Lock()
		ms.asked = append(ms.asked, r.URL.Path)
		ms.mu.Unlock()
		f, ok := paths[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_ = json.NewEncoder(w).Encode(f(ms.URL))
	}))
	t.Cleanup(ms.Close)
	return ms
}

func fullDoc(issuer string) map[string]any {
	return map[string]any{
		"issuer":                           issuer,
		"authorization_endpoint":           issuer + "/auth",
		"token_endpoint":                   issuer + "/token",
		"device_authorization_endpoint":    issuer + "/device",
		"revocation_endpoint":              issuer + "/revoke",
		"introspection_endpoint":           issuer + "/introspect",
		"jwks_uri":                         issuer + "/jwks",
		"code_challenge_methods_supported": []string{"S256"},
		"grant_types_supported":            []string{"authorization_code", "refresh_token"},
		"scopes_supported":                 []string{"openid", "offline_access"},
		"authorization_response_iss_parameter_supported": true,
	}
}

func TestDiscoverOpenIDConfiguration(t *testing.T) {
	ms := newMetadataServer(t, map[string]func(string) any{
		"/.well-known/openid-configuration": func(iss string) any { return fullDoc(iss) },
	})
	md, err := Discover(context.Background(), ms.Client(), ms.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := &Metadata{
		Issuer: ms.URL, AuthURL: ms.URL + "/auth", TokenURL: ms.URL + "/token",
		DeviceURL: ms.URL + "/device", RevokeURL: ms.URL + "/revoke",
		IntrospectURL: ms.URL + "/introspect", JWKSURL: ms.URL + "/jwks",
		CodeChallengeMethods: []string{"S256"},
		GrantTypes:           []string{"authorization_code", "refresh_token"},
		ScopesSupported:      []string{"openid", "offline_access"},
		IssParameter:         true,
		Source:               ms.URL + "/.well-known/openid-configuration",
	}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("got  %+v\nwant %+v", md, want)
	}
}

func TestDiscoverRFC8414PathInsertion(t *testing.T) {
	// Issuer https://host/tenant1: OIDC looks at /tenant1/.well-known/openid-configuration,
	// RFC 8414 at /.well-known/oauth-authorization-server/tenant1.
	ms := newMetadataServer(t, map[string]func(string) any{
		"/.well-known/oauth-authorization-server/tenant1": func(iss string) any {
			return map[string]any{"issuer": iss + "/tenant1", "token_endpoint": iss + "/tenant1/token"}
		},
	})
	md, err := Discover(context.Background(), ms.Client(), ms.URL+"/tenant1")
	if err != nil {
		t.Fatal(err)
	}
	if md.TokenURL != ms.URL+"/tenant1/token" || md.Issuer != ms.URL+"/tenant1" {
		t.Errorf("metadata = %+v", md)
	}
	wantAsked := []string{"/tenant1/.well-known/openid-configuration", "/.well-known/oauth-authorization-server/tenant1"}
	if !reflect.DeepEqual(ms.asked, wantAsked) {
		t.Errorf("asked %q, want %q", ms.asked, wantAsked)
	}
}

func TestDiscoverTrailingSlash(t *testing.T) {
	ms := newMetadataServer(t, map[string]func(string) any{
		"/.well-known/openid-configuration": func(iss string) any { return fullDoc(iss) },
	})
	if _, err := Discover(context.Background(), ms.Client(), ms.URL+"/"); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverErrors(t *testing.T) {
	tests := []struct {
		name    string
		doc     func(iss string) any
		status  int
		ctype   string
		issuer  func(url string) string
		wantIs  error
		wantMsg string
	}{
		{name: "issuer mismatch", doc: func(string) any { return fullDoc("https://evil.example") }, wantIs: ErrIssuerMismatch},
		{name: "no token endpoint", doc: func(iss string) any { return map[string]any{"issuer": iss} }, wantMsg: "no token_endpoint"},
		{name: "insecure endpoint", doc: func(iss string) any {
			d := fullDoc(iss)
			d["token_endpoint"] = "http://token.example/token"
			return d
		}, wantIs: ErrInsecureEndpoint},
		{name: "not found", wantIs: ErrNoMetadata},
		{name: "server error", status: 500, doc: func(iss string) any { return fullDoc(iss) }, wantMsg: "500"},
		{name: "html", ctype: "text/html", doc: func(iss string) any { return fullDoc(iss) }, wantMsg: "not JSON"},
		{name: "bad json", doc: func(string) any { return "[" }, wantMsg: "not valid metadata JSON"},
		{name: "insecure issuer", issuer: func(string) string { return "http://example.com" }, wantIs: ErrInsecureEndpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.doc == nil || r.URL.Path != "/.well-known/openid-configuration" {
					http.NotFound(w, r)
					return
				}
				ct := tt.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				d := tt.doc("http://" + r.Host)
				if s, ok := d.(string); ok {
					_, _ = w.Write([]byte(s))
					return
				}
				_ = json.NewEncoder(w).Encode(d)
			}))
			defer srv.Close()
			issuer := srv.URL
			if tt.issuer != nil {
				issuer = tt.issuer(srv.URL)
			}
			md, err := Discover(context.Background(), srv.Client(), issuer)
			if err == nil {
				t.Fatalf("Discover = %+v, want an error", md)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestDiscoverHonoursContext(t *testing.T) {
	ms := newMetadataServer(t, map[string]func(string) any{
		"/.well-known/openid-configuration": func(iss string) any { return fullDoc(iss) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Discover(ctx, ms.Client(), ms.URL); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
