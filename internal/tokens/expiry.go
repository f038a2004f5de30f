package tokens

import (
	"fmt"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

// RefreshExpiryWarning explains a refresh token that the provider said will
// die (Record.RefreshExpiry), or returns "" when it did not say so. The text
// names the time, what is left, and why; known is false when the reason is
// not known, and then only a new login will do once the token has died.
func RefreshExpiryWarning(rec *store.Record, now time.Time) (warning string, known bool) {
	if rec == nil || rec.RefreshExpiry.IsZero() {
		return "", false
	}
	at := rec.RefreshExpiry.UTC().Format("2006-01-02 15:04 MST")
	var when string
	if left := rec.RefreshExpiry.Sub(now); left > 0 {
		when = fmt.Sprintf("refresh token expires %s (in %s)", at, roundDuration(left))
	} else {
		when = fmt.Sprintf("refresh token expired %s", at)
	}
	if p, ok := provider.ForTokenURL(rec.TokenURL); ok && p.RefreshLimit != "" {
		return when + ": " + p.RefreshLimit, true
	}
	return when + ": the provider limits the refresh token's lifetime", false
}

// roundDuration words d in days and hours, or hours and minutes when short.
func roundDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d >= day:
		return fmt.Sprintf("%dd%dh", d/day, d%day/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	}
	return fmt.Sprintf("%dm", max(d/time.Minute, 1))
}
