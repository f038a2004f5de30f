package tokens

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

func TestRefreshExpiryWarning(t *testing.T) {
	google := &store.Record{Account: "g", TokenURL: "https://oauth2.googleapis.com/token",
		RefreshExpiry: t0.Add(6*24*time.Hour + 5*time.Hour)}
	w, known := RefreshExpiryWarning(google, t0)
	for _, want := range []string{"2025-03-07 17:00 UTC", "in 6d5h", `"Testing"`, `"In production"`} {
		if !strings.Contains(w, want) {
			t.Errorf("warning %q lacks %q", w, want)
		}
	}
	if !known {
		t.Errorf("Google's limit is not known")
	}
	if w, _ := RefreshExpiryWarning(google, t0.Add(8*24*time.Hour)); !strings.Contains(w, "expired 2025-03-07") {
		t.Errorf("past expiry: %q", w)
	}
	other := &store.Record{Account: "x", TokenURL: "https://idp.example/token", RefreshExpiry: t0.Add(90 * time.Minute)}
	w, known = RefreshExpiryWarning(other, t0)
	if strings.Contains(w, "Google") || !strings.Contains(w, "in 1h30m") || known {
		t.Errorf("generic warning %q", w)
	}
	if w, _ := RefreshExpiryWarning(&store.Record{TokenURL: google.TokenURL}, t0); w != "" {
		t.Errorf("warning without RefreshExpiry: %q", w)
	}
	if w, _ := RefreshExpiryWarning(nil, t0); w != "" {
		t.Errorf("warning for nil record: %q", w)
	}
}

func TestRoundDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second:              "1m",
		42 * time.Minute:              "42m",
		3*time.Hour + 7*time.Minute:   "3h7m",
		49*time.Hour + 59*time.Minute: "2d1h",
		7 * 24 * time.Hour:            "7d0h",
	} {
		if got := roundDuration(d); got != want {
			t.Errorf("roundDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"":                  0,
		"0":                 0,
		"-5":                0,
		" 30 ":              30 * time.Second,
		"99999999999999999": 24 * time.Hour,
		"soon":              0,
		t0.Add(2 * time.Minute).Format(http.TimeFormat):  2 * time.Minute,
		t0.Add(-2 * time.Minute).Format(http.TimeFormat): 0,
	} {
		if got := parseRetryAfter(v, t0); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestStoredReasonRoundTrip(t *testing.T) {
	for _, tc := range []struct{ code, desc string }{
		{"invalid_grant", "Token has been expired or revoked."},
		{"invalid_client", ""},
		// Codes a Source may call permanent beyond the ones the package
		// knows itself (internal/oauth does for these).
		{"invalid_scope", "AADSTS70011: The provided value for the input parameter 'scope' is not valid."},
		{"invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'."},
		{"", "oauth: cannot fetch token: something"},
		{"", "free text: with a colon"},
	} {
		code, desc := parseStoredReason(storedReason(tc.code, tc.desc))
		if code != tc.code || desc != tc.desc {
			t.Errorf("round trip of %q %q gave %q %q", tc.code, tc.desc, code, desc)
		}
	}
}
