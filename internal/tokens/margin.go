package tokens

import (
	"time"

	"github.com/mailkey/mailkey/internal/store"
)

// MinMargin is the least margin the adaptive rule leaves (unless the
// configured margin is smaller): a token is not handed out with so little
// time left that a client could not finish a login with it.
const MinMargin = 2 * time.Second

// Lifetime returns the lifetime rec's access token was issued with:
// Expiry minus Issued. Records written before Issued was kept fall back to
// the last refresh or update, which were set when their token arrived. It
// returns 0 when the lifetime is unknown (no expiry, or no time to count
// from).
func Lifetime(rec *store.Record) time.Duration {
	if rec == nil || rec.Expiry.IsZero() {
		return 0
	}
	from := rec.Issued
	if from.IsZero() {
		from = rec.LastRefresh
	}
	if from.IsZero() {
		from = rec.Updated
	}
	if from.IsZero() || !rec.Expiry.After(from) {
		return 0
	}
	return rec.Expiry.Sub(from)
}

// Margin returns how long rec's access token must stay valid to be used
// without a refresh, for a configured margin: the configured one, but never
// more than half the token's lifetime, so that a token is refreshed once
// and not on every use however short it lives; and at least MinMargin
// (or the configured margin, when that is smaller). With an unknown
// lifetime it is the configured margin.
func Margin(rec *store.Record, margin time.Duration) time.Duration {
	l := Lifetime(rec)
	if l <= 0 {
		return margin
	}
	return min(margin, max(l/2, MinMargin))
}
