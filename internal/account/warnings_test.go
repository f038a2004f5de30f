package account

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/store"
)

func certFile(t *testing.T, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mail-app"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app.crt")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEarlyWarnings(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	soon, later := certFile(t, now.Add(5*day)), certFile(t, now.Add(60*day))
	used := func(ago time.Duration) *store.Record {
		return &store.Record{Account: "a", RefreshToken: "rt", LastRefresh: now.Add(-ago), Updated: now.Add(-ago)}
	}
	cases := []struct {
		name string
		conf config.Account
		rec  *store.Record
		want []string // prefixes, in order
	}{
		{"nothing known", config.Account{Provider: "generic"}, used(400 * day), nil},
		{"secret in 10 days", config.Account{Provider: "generic", ClientSecret: "s", ClientSecretExpires: now.Add(10 * day)}, nil,
			[]string{"the client secret expires 2026-12-17 (in 10d)"}},
		{"secret in 60 days", config.Account{Provider: "generic", ClientSecret: "s", ClientSecretExpires: now.Add(60 * day)}, nil, nil},
		{"secret expired", config.Account{Provider: "generic", ClientSecret: "s", ClientSecretExpires: now.Add(-day)}, nil,
			[]string{"the client secret expired 2026-12-06"}},
		{"certificate in 5 days", config.Account{Provider: "microsoft", Flow: "client_credentials", CertificateFile: soon}, nil,
			[]string{"the client certificate " + soon + " (mail-app) expires"}},
		{"certificate in 60 days", config.Account{Provider: "microsoft", Flow: "client_credentials", CertificateFile: later}, nil, nil},
		{"microsoft unused 80 days", config.Account{Provider: "microsoft"}, used(80 * day),
			[]string{"the refresh token was last used 2026-09-18 and expires 2026-12-17 (in 10d): Microsoft 365"}},
		{"microsoft unused 10 days", config.Account{Provider: "microsoft"}, used(10 * day), nil},
		{"microsoft unused 100 days", config.Account{Provider: "microsoft"}, used(100 * day), []string{"the refresh token was last used"}},
		{"google unused 175 days", config.Account{Provider: "google"}, used(175 * day), []string{"the refresh token was last used"}},
		{"a login is needed anyway", config.Account{Provider: "microsoft"},
			&store.Record{RefreshToken: "rt", NeedsLogin: true, Updated: now.Add(-100 * day)}, nil},
		{"app-only tokens have no refresh token", config.Account{Provider: "microsoft", Flow: "client_credentials"}, used(100 * day), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ws := EarlyWarnings(&c.conf, c.rec, now)
			if len(ws) != len(c.want) {
				t.Fatalf("got %d warnings %+v, want %d", len(ws), ws, len(c.want))
			}
			for i, w := range ws {
				if !strings.HasPrefix(w.Text, c.want[i]) || w.Fix == "" || w.At.IsZero() {
					t.Errorf("warning %d: %+v, want text starting %q", i, w, c.want[i])
				}
			}
		})
	}
}
