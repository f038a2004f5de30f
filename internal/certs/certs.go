// Package certs is the local certificate of mailkey serve's listeners:
// the user's own, or a self-signed one for localhost, 127.0.0.1 and ::1
// generated once into the state folder (RFC 5280), and its SHA-256
// fingerprint, which mailkey status and the status page show so that a
// client can pin it.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailkey/mailkey/internal/atomicfile"
	"github.com/mailkey/mailkey/internal/secperm"
)

// The generated certificate of the proxy's listeners, in the state folder.
const (
	CertFileName = "proxy-cert.pem"
	KeyFileName  = "proxy-key.pem"
	// certLifetime: long, since clients pin the certificate or its
	// fingerprint; it is replaced only once expired.
	certLifetime = 10 * 365 * 24 * time.Hour
)

// Paths returns where the generated certificate and key live in the
// state folder dir.
func Paths(dir string) (certFile, keyFile string) {
	return filepath.Join(dir, CertFileName), filepath.Join(dir, KeyFileName)
}

// Fingerprint is the SHA-256 of a certificate's DER bytes, as
// colon-separated upper-case hex (the form openssl x509 -fingerprint
// -sha256 prints).
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// FileFingerprint returns the fingerprint of the first certificate in a
// PEM file; the error wraps fs.ErrNotExist when there is no file.
func FileFingerprint(certFile string) (string, error) {
	b, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s: no PEM certificate", certFile)
	}
	return Fingerprint(blk.Bytes), nil
}

// Load loads certFile and keyFile when given (the user's own certificate),
// else the generated one in stateDir, generating it first when missing or
// expired. It reports whether it generated one.
func Load(certFile, keyFile, stateDir string) (tls.Certificate, bool, error) {
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		return c, false, err
	}
	certFile, keyFile = Paths(stateDir)
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err == nil && c.Leaf != nil && time.Now().Before(c.Leaf.NotAfter) {
		var pe *secperm.Error
		if err := secperm.CheckPrivate(keyFile); errors.As(err, &pe) {
			return tls.Certificate{}, false, err
		}
		return c, false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, false, err
	}
	if err := Generate(certFile, keyFile); err != nil {
		return tls.Certificate{}, false, err
	}
	c, err = tls.LoadX509KeyPair(certFile, keyFile)
	return c, true, err
}

// Generate writes a self-signed ECDSA P-256 certificate for
// localhost, 127.0.0.1 and ::1. It is its own CA, so a client can trust
// the file directly. The key is written 0600 before the certificate, so a
// certificate never names a key that is missing.
func Generate(certFile, keyFile string) error {
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"mailkey local proxy"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certLifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}
