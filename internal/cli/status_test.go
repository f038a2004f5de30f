package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

func TestStatusWarnings(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ms := &config.Account{Name: "work", Provider: "microsoft", Protocols: []provider.Protocol{provider.IMAP, provider.SMTP}}
	imap := "https://outlook.office.com/IMAP.AccessAsUser.All"
	smtp := "https://outlook.office.com/SMTP.Send"
	for _, tc := range []struct {
		name string
		a    *config.Account
		rec  *store.Record
		want []string // substrings, one warning each, in order
	}{
		{"all scopes and a refresh token", ms,
			&store.Record{RefreshToken: "r", Scopes: []string{imap, smtp, "offline_access"}}, nil},
		{"smtp scope missing", ms,
			&store.Record{RefreshToken: "r", Scopes: []string{imap, "offline_access"}}, []string{"lacks scope " + smtp + ", which SMTP needs"}},
		{"no refresh token", ms,
			&store.Record{Scopes: []string{imap, smtp}}, []string{"offline_access scope is missing"}},
		{"app-only has no refresh token and no delegated scopes", &config.Account{Name: "app", Provider: "microsoft", Flow: config.FlowClientCredentials, Protocols: ms.Protocols},
			&store.Record{Scopes: []string{"https://outlook.office365.com/.default"}}, nil},
		{"explicit scopes are the user's choice", &config.Account{Name: "x", Provider: "microsoft", Scopes: []string{"a"}, Protocols: ms.Protocols},
			&store.Record{RefreshToken: "r", Scopes: []string{"a"}}, nil},
		{"refresh token with a deadline", &config.Account{Name: "g", Provider: "google", Protocols: []provider.Protocol{provider.IMAP}},
			&store.Record{RefreshToken: "r", Scopes: []string{"https://mail.google.com/"}, TokenURL: "https://oauth2.googleapis.com/token", RefreshExpiry: now.Add(48 * time.Hour)},
			[]string{"Testing"}},
		{"a client error marked by an older version is no dead grant", ms,
			&store.Record{RefreshToken: "r", Scopes: []string{imap, smtp}, NeedsLogin: true, Reason: "invalid_client: client authentication failed"},
			[]string{"rejected the app's client credentials or scopes, not the login; check client_secret"}},
		{"a dead grant has no such warning", ms,
			&store.Record{RefreshToken: "r", Scopes: []string{imap, smtp}, NeedsLogin: true, Reason: "invalid_grant"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := warnings(tc.a, tc.rec, now)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d matching %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want it to mention %q", i, got[i], w)
				}
			}
		})
	}
}
