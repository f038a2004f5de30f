package check

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// certWarning is how close to its expiry a certificate draws a warning.
const certWarning = 14 * 24 * time.Hour

// describeTLS words a verified connection: version, the certificate's
// names, issuer and expiry. warn is set when it expires soon.
func describeTLS(cs *tls.ConnectionState, how string, now time.Time) (detail string, warn bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return how, false
	}
	leaf := cs.PeerCertificates[0]
	left := leaf.NotAfter.Sub(now)
	detail = fmt.Sprintf("%s, %s; certificate for %s, issued by %s, expires %s (in %s)",
		how, tls.VersionName(cs.Version), strings.Join(certNames(leaf), ", "), issuerName(leaf),
		leaf.NotAfter.Local().Format(time.DateOnly), days(left))
	return detail, left < certWarning
}

// describeTLSError adds to a failed verification what the certificate
// said, so that the user can compare it with what they configured.
func describeTLSError(err error) string {
	var cert *x509.Certificate
	var he x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &he):
		cert = he.Certificate
	case errors.As(err, &ua):
		cert = ua.Cert
	case errors.As(err, &ci):
		cert = ci.Cert
	case errors.As(err, &cv) && len(cv.UnverifiedCertificates) > 0:
		cert = cv.UnverifiedCertificates[0]
	}
	msg := err.Error()
	if cert == nil {
		return msg
	}
	return fmt.Sprintf("%s; the certificate names %s, is issued by %s and valid %s to %s",
		msg, strings.Join(certNames(cert), ", "), issuerName(cert),
		cert.NotBefore.Local().Format(time.DateOnly), cert.NotAfter.Local().Format(time.DateOnly))
}

// certNames lists the names a certificate is valid for.
func certNames(c *x509.Certificate) []string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = append(names, "CN="+c.Subject.CommonName+" (no subject alternative names)")
	}
	if len(names) == 0 {
		names = append(names, "no name")
	}
	return names
}

func issuerName(c *x509.Certificate) string {
	switch {
	case c.Issuer.CommonName != "":
		return c.Issuer.CommonName
	case len(c.Issuer.Organization) > 0:
		return c.Issuer.Organization[0]
	}
	return c.Issuer.String()
}

func days(d time.Duration) string {
	if d < 0 {
		return "expired " + days(-d) + " ago"
	}
	n := int(d.Hours() / 24)
	if n == 1 {
		return "1 day"
	}
	if n == 0 {
		return roundDuration(d).String()
	}
	return fmt.Sprintf("%d days", n)
}
