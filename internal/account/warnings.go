package account

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/mailkey/mailkey/internal/config"
	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

// How far ahead of a known deadline a warning starts.
const (
	// CredentialWarnAhead is for the app's own credentials (a client
	// secret, a certificate): replacing them takes an administrator.
	CredentialWarnAhead = 30 * 24 * time.Hour
	// IdleWarnAhead is for a refresh token left unused: any use renews it.
	IdleWarnAhead = 14 * 24 * time.Hour
)

// WarningKind says what a Warning is about.
type WarningKind string

const (
	WarnSecretExpiry      WarningKind = "client-secret-expiry"
	WarnCertificateExpiry WarningKind = "certificate-expiry"
	WarnIdle              WarningKind = "refresh-token-idle"
)

// Warning is a deadline ahead of an account: after At it stops working
// until someone acts. Text says what and when; Fix says what to do, at the
// provider or in the configuration (never a mailkey command: callers add
// those).
type Warning struct {
	Kind WarningKind
	At   time.Time
	Text string
	Fix  string
}

// EarlyWarnings lists the deadlines of account conf that are due within
// their warning period or past, given its stored record (nil when none):
// the client secret's expiry as recorded in client_secret_expires, the
// NotAfter of the certificate in certificate_file, and the provider's limit
// on an unused refresh token. Deadlines the provider announces with a token
// (refresh_token_expires_in) are in the record, not here.
func EarlyWarnings(conf *config.Account, rec *store.Record, now time.Time) []Warning {
	var ws []Warning
	if at := conf.ClientSecretExpires; !at.IsZero() && now.After(at.Add(-CredentialWarnAhead)) {
		ws = append(ws, Warning{
			Kind: WarnSecretExpiry, At: at,
			Text: "the client secret " + when(at, now, time.DateOnly) + " (client_secret_expires)",
			Fix:  "create a new client secret for the app at the provider, then update client_secret (or client_secret_cmd) and client_secret_expires",
		})
	}
	if conf.CertificateFile != "" {
		if cert, err := leafCertificate(conf.CertificateFile); err == nil && now.After(cert.NotAfter.Add(-CredentialWarnAhead)) {
			ws = append(ws, Warning{
				Kind: WarnCertificateExpiry, At: cert.NotAfter,
				Text: fmt.Sprintf("the client certificate %s (%s) %s", conf.CertificateFile, cert.Subject.CommonName, when(cert.NotAfter, now, time.DateTime)),
				Fix:  "upload a new certificate to the app at the provider, then point certificate_file and private_key_file at it",
			})
		}
	}
	if w, ok := idleWarning(conf, rec, now); ok {
		ws = append(ws, w)
	}
	return ws
}

// idleWarning warns of a refresh token that the provider will drop for
// lack of use.
func idleWarning(conf *config.Account, rec *store.Record, now time.Time) (Warning, bool) {
	if rec == nil || rec.RefreshToken == "" || rec.NeedsLogin || conf.Flow != "" {
		return Warning{}, false
	}
	p, err := provider.Lookup(conf.Provider)
	if err != nil || p.IdleLimit == 0 {
		return Warning{}, false
	}
	// The token was last renewed at the last refresh or login, whichever
	// wrote the record last.
	used := rec.LastRefresh
	if rec.Updated.After(used) {
		used = rec.Updated
	}
	if used.IsZero() {
		return Warning{}, false
	}
	at := used.Add(p.IdleLimit)
	if !now.After(at.Add(-IdleWarnAhead)) {
		return Warning{}, false
	}
	return Warning{
		Kind: WarnIdle, At: at,
		Text: fmt.Sprintf("the refresh token was last used %s and %s: %s drops refresh tokens unused for %d days (%s)",
			used.In(now.Location()).Format(time.DateOnly), when(at, now, time.DateOnly), p.Title, int(p.IdleLimit/(24*time.Hour)), p.IdleLimitSource),
		Fix: "use the account before then: any token request renews the refresh token",
	}, true
}

// when words a deadline in now's time zone: "expires 2027-06-30 (in 12d)"
// or "expired 2027-06-30".
func when(at, now time.Time, layout string) string {
	s := at.In(now.Location()).Format(layout)
	if left := at.Sub(now); left > 0 {
		return fmt.Sprintf("expires %s (in %s)", s, roundDays(left))
	}
	return "expired " + s
}

func roundDays(d time.Duration) string {
	const day = 24 * time.Hour
	if d >= day {
		return fmt.Sprintf("%dd", d/day)
	}
	return fmt.Sprintf("%dh", max(d/time.Hour, 1))
}

// leafCertificate reads the first certificate of a PEM file.
func leafCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s holds no certificate", path)
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
}
