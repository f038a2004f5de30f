package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

const (
	// assertionLifetime is the exp of client assertions: short, as RFC 7523
	// §3 advises; Entra accepts up to ten minutes.
	assertionLifetime = 5 * time.Minute
	// AssertionType is RFC 7523 §2.2's client_assertion_type.
	AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	// certFileLimit bounds certificate and key files read by LoadCertificate.
	certFileLimit = 1 << 20
)

// ClientCredentials gets an app-only token with the client secret
// (RFC 6749 §4.4), e.g. Microsoft 365 with scope
// https://outlook.office365.com/.default.
func (c *Client) ClientCredentials(ctx context.Context) (*Token, error) {
	const op = "client credentials"
	secrets := []string{c.Config.ClientSecret}
	if err := checkEndpoints(c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, secrets)
	}
	conf := clientcredentials.Config{
		ClientID:     c.Config.ClientID,
		ClientSecret: c.Config.ClientSecret,
		TokenURL:     c.Config.Endpoint.TokenURL,
		Scopes:       c.Config.Scopes,
		AuthStyle:    c.Config.Endpoint.AuthStyle,
	}
	t, err := conf.Token(c.ctx(ctx))
	if err != nil {
		return nil, classify(op, err, secrets)
	}
	return newToken(t, c.Config.Scopes, time.Now()), nil
}

// ClientAssertion gets an app-only token by authenticating with a
// certificate instead of a secret: the client credentials grant with an
// RFC 7523 §2.2 client assertion (OpenID "private_key_jwt"). The JWT has
// iss = sub = client id, aud = the token URL, a random jti, a five-minute
// exp, and the x5t#S256 and x5t (SHA-1, which Microsoft Entra reads)
// thumbprints of cert in its header. RSA keys sign with RS256, ECDSA keys
// with ES256/384/512, Ed25519 keys with EdDSA.
func (c *Client) ClientAssertion(ctx context.Context, cert *x509.Certificate, key crypto.Signer) (*Token, error) {
	const op = "client assertion"
	if err := checkEndpoints(c.Config.Endpoint.TokenURL); err != nil {
		return nil, classify(op, err, nil)
	}
	assertion, err := c.assertion(cert, key, time.Now())
	if err != nil {
		return nil, &Error{Op: op, Err: err}
	}
	conf := clientcredentials.Config{
		ClientID:  c.Config.ClientID,
		TokenURL:  c.Config.Endpoint.TokenURL,
		Scopes:    c.Config.Scopes,
		AuthStyle: oauth2.AuthStyleInParams, // client_id in the body, no secret
		EndpointParams: url.Values{
			"client_assertion_type": {AssertionType},
			"client_assertion":      {assertion},
		},
	}
	t, err := conf.Token(c.ctx(ctx))
	if err != nil {
		return nil, classify(op, err, []string{assertion})
	}
	return newToken(t, c.Config.Scopes, time.Now()), nil
}

// assertion signs the client assertion JWT.
func (c *Client) assertion(cert *x509.Certificate, key crypto.Signer, now time.Time) (string, error) {
	if cert == nil || key == nil {
		return "", errors.New("client assertion needs a certificate and its private key")
	}
	alg, err := signingAlg(key.Public())
	if err != nil {
		return "", err
	}
	s256 := sha256.Sum256(cert.Raw)
	s1 := sha1.Sum(cert.Raw)
	opts := (&jose.SignerOptions{}).WithType("JWT").
		WithHeader("x5t#S256", base64.RawURLEncoding.EncodeToString(s256[:])).
		WithHeader("x5t", base64.RawURLEncoding.EncodeToString(s1[:]))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: cryptosigner.Opaque(key)}, opts)
	if err != nil {
		return "", fmt.Errorf("cannot sign the client assertion: %w", err)
	}
	claims := josejwt.Claims{
		Issuer:    c.Config.ClientID,
		Subject:   c.Config.ClientID,
		Audience:  josejwt.Audience{c.Config.Endpoint.TokenURL},
		ID:        randomString(24),
		IssuedAt:  josejwt.NewNumericDate(now),
		NotBefore: josejwt.NewNumericDate(now),
		Expiry:    josejwt.NewNumericDate(now.Add(assertionLifetime)),
	}
	out, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("cannot sign the client assertion: %w", err)
	}
	return out, nil
}

func signingAlg(pub crypto.PublicKey) (jose.SignatureAlgorithm, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return jose.RS256, nil
	case ed25519.PublicKey:
		return jose.EdDSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return jose.ES256, nil
		case elliptic.P384():
			return jose.ES384, nil
		case elliptic.P521():
			return jose.ES512, nil
		}
	}
	return "", fmt.Errorf("unsupported key type %T for a client assertion", pub)
}

// LoadCertificate reads a PEM certificate and its private key for
// ClientAssertion. keyFile may be empty when the key is in certFile. The
// first certificate is the one used; the key (PKCS #8, PKCS #1 or SEC 1,
// unencrypted) must match it. Errors name the file, never its content.
func LoadCertificate(certFile, keyFile string) (*x509.Certificate, crypto.Signer, error) {
	certPEM, err := readLimited(certFile)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, keyName := certPEM, certFile
	if keyFile != "" && keyFile != certFile {
		if keyPEM, err = readLimited(keyFile); err != nil {
			return nil, nil, err
		}
		keyName = keyFile
	}
	var cert *x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			if cert, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, nil, fmt.Errorf("%s: cannot parse the certificate: %w", certFile, err)
			}
			break
		}
	}
	if cert == nil {
		return nil, nil, fmt.Errorf("%s: no PEM certificate found", certFile)
	}
	var key crypto.Signer
	for rest := keyPEM; key == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if key, err = parseKey(b); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", keyName, err)
		}
	}
	if key == nil {
		return nil, nil, fmt.Errorf("%s: no PEM private key found", keyName)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, nil, fmt.Errorf("%s: the private key does not match the certificate in %s", keyName, certFile)
	}
	return cert, key, nil
}

func readLimited(name string) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Size() > certFileLimit {
		return nil, fmt.Errorf("%s: too large for a PEM file", name)
	}
	return os.ReadFile(name)
}

// parseKey returns the signer in a PEM block, or nil for a block that holds
// no private key.
func parseKey(b *pem.Block) (crypto.Signer, error) {
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		if b.Headers["Proc-Type"] != "" {
			return nil, errors.New("the private key is encrypted; decrypt it first")
		}
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		if b.Headers["Proc-Type"] != "" {
			return nil, errors.New("the private key is encrypted; decrypt it first")
		}
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("the private key is encrypted; decrypt it first")
	default:
		return nil, nil
	}
	if err != nil {
		return nil, errors.New("cannot parse the private key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", k)
	}
	return s, nil
}

// serviceAccountKey is the part of a Google service account key file used.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// ServiceAccount gets a token for subject (a mailbox) with a Google service
// account key file and domain-wide delegation: the JWT bearer grant of
// RFC 7523 §2.1 with iss = client_email, sub = subject, scope =
// Config.Scopes and aud = the key's token_uri (Config.Endpoint.TokenURL when
// the key has none).
func (c *Client) ServiceAccount(ctx context.Context, keyJSON []byte, subject string) (*Token, error) {
	const op = "service account"
	var sa serviceAccountKey
	if err := json.Unmarshal(keyJSON, &sa); err != nil {
		return nil, &Error{Op: op, Err: errors.New("cannot parse the service account key file")}
	}
	if sa.Type != "" && sa.Type != "service_account" {
		return nil, &Error{Op: op, Err: fmt.Errorf("key file is of type %q, not service_account", sa.Type)}
	}
	if sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, &Error{Op: op, Err: errors.New("key file has no client_email or private_key")}
	}
	tokenURL := sa.TokenURI
	if tokenURL == "" {
		tokenURL = c.Config.Endpoint.TokenURL
	}
	secrets := []string{sa.PrivateKey}
	if err := checkEndpoints(tokenURL); err != nil {
		return nil, classify(op, err, secrets)
	}
	conf := &jwt.Config{
		Email:        sa.ClientEmail,
		PrivateKey:   []byte(sa.PrivateKey),
		PrivateKeyID: sa.PrivateKeyID,
		Subject:      subject,
		Scopes:       c.Config.Scopes,
		TokenURL:     tokenURL,
	}
	t, err := conf.TokenSource(c.ctx(ctx)).Token()
	if err != nil {
		return nil, classify(op, err, secrets)
	}
	return newToken(t, c.Config.Scopes, time.Now()), nil
}

// Revoke asks the provider to revoke token (RFC 7009). hint is
// "refresh_token", "access_token" or empty. Revoking a refresh token
// usually revokes the whole grant. A token the provider already considers
// invalid (Google answers invalid_token) counts as revoked.
func (c *Client) Revoke(ctx context.Context, token, hint string) error {
	const op = "revoke"
	if c.RevokeURL == "" {
		return &Error{Op: op, Err: ErrNoRevocation}
	}
	secrets := []string{token, c.Config.ClientSecret}
	if err := CheckEndpoint(c.RevokeURL); err != nil {
		return classify(op, err, secrets)
	}
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	resp, body, err := c.post(ctx, c.RevokeURL, form, true)
	if err != nil {
		return classify(op, err, secrets)
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	e := errorFromBody(op, resp.StatusCode, resp.Header, body, secrets)
	if e.Code == "invalid_token" {
		return nil
	}
	return e
}
