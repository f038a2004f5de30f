package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
)

func selfSigned(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "mailkey test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestClientCredentials(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	c.Config.Scopes = []string{"https://outlook.office365.com/.default"}
	p.token = func(w http.ResponseWriter, form url.Values) bool {
		if form.Get("grant_type") == "client_credentials" && form.Get("client_secret") == testSecret &&
			form.Get("scope") == "https://outlook.office365.com/.default" {
			p.issue(w, false, nil)
			return true
		}
		return false
	}
	c.Config.Endpoint.AuthStyle = 1 // oauth2.AuthStyleInParams
	tok, err := c.ClientCredentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.RefreshToken != "" {
		t.Errorf("token = %v", tok)
	}
}

// checkAssertion verifies a client assertion as a server would.
func checkAssertion(t *testing.T, raw, tokenURL string, cert *x509.Certificate) error {
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return err
	}
	var claims josejwt.Claims
	if err := tok.Claims(cert.PublicKey, &claims); err != nil {
		return err
	}
	if err := claims.Validate(josejwt.Expected{Issuer: "client-id", Subject: "client-id", AnyAudience: josejwt.Audience{tokenURL}, Time: time.Now()}); err != nil {
		return err
	}
	if claims.ID == "" || claims.Expiry == nil || claims.IssuedAt == nil {
		return errors.New("no jti/exp/iat")
	}
	if life := claims.Expiry.Time().Sub(claims.IssuedAt.Time()); life < 5*time.Minute || life > 10*time.Minute {
		return errors.New("lifetime not 5-10 minutes")
	}
	head, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h map[string]string
	json.Unmarshal(head, &h)
	s256 := sha256.Sum256(cert.Raw)
	if h["x5t#S256"] != base64.RawURLEncoding.EncodeToString(s256[:]) {
		return errors.New("x5t#S256 wrong")
	}
	if len(h["x5t"]) != 27 || h["typ"] != "JWT" {
		return errors.New("x5t or typ missing")
	}
	return nil
}

func TestClientAssertion(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for name, key := range map[string]crypto.Signer{"rsa": rsaKey, "ecdsa": ecKey} {
		t.Run(name, func(t *testing.T) {
			cert := selfSigned(t, key)
			p := newProvider(t)
			c := p.client()
			c.Config.ClientSecret = ""
			var verr error = errors.New("no assertion")
			p.token = func(w http.ResponseWriter, form url.Values) bool {
				if form.Get("grant_type") != "client_credentials" || form.Get("client_assertion_type") != AssertionType ||
					form.Get("client_id") != "client-id" || form.Get("client_secret") != "" {
					jsonError(w, 400, "invalid_request", "bad form")
					return true
				}
				if verr = checkAssertion(t, form.Get("client_assertion"), p.srv.URL+"/token", cert); verr != nil {
					jsonError(w, 401, "invalid_client", "AADSTS700027: Client assertion contains an invalid signature.")
					return true
				}
				p.issue(w, false, nil)
				return true
			}
			tok, err := c.ClientAssertion(context.Background(), cert, key)
			if err != nil || verr != nil {
				t.Fatalf("err = %v, server check = %v", err, verr)
			}
			if tok.AccessToken == "" {
				t.Fatal("no token")
			}
			// A certificate that does not belong to the key fails at the server.
			other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			_, err = c.ClientAssertion(context.Background(), selfSigned(t, other), key)
			if e := Classify(err); e.Code != "invalid_client" || e.AADSTS != "AADSTS700027" || verr == nil {
				t.Errorf("mismatched cert: %v (server: %v)", err, verr)
			}
		})
	}
}

func writePEM(t *testing.T, path string, blocks ...*pem.Block) string {
	t.Helper()
	var b []byte
	for _, bl := range blocks {
		b = append(b, pem.EncodeToMemory(bl)...)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadCertificate(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cert := selfSigned(t, key)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	certBlock := &pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}
	keyBlock := &pem.Block{Type: "PRIVATE KEY", Bytes: der}

	both := writePEM(t, filepath.Join(dir, "both.pem"), keyBlock, certBlock)
	c, k, err := LoadCertificate(both, "")
	if err != nil || !c.Equal(cert) || !key.PublicKey.Equal(k.Public()) {
		t.Fatalf("combined file: %v", err)
	}
	certOnly := writePEM(t, filepath.Join(dir, "cert.pem"), certBlock)
	keyOnly := writePEM(t, filepath.Join(dir, "key.pem"), keyBlock)
	if _, _, err := LoadCertificate(certOnly, keyOnly); err != nil {
		t.Fatalf("separate files: %v", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := writePEM(t, filepath.Join(dir, "rsa.pem"), &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})
	if _, _, err := LoadCertificate(certOnly, pkcs1); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key: %v", err)
	}
	if _, _, err := LoadCertificate(certOnly, ""); err == nil || !strings.Contains(err.Error(), "no PEM private key") {
		t.Errorf("missing key: %v", err)
	}
	enc := writePEM(t, filepath.Join(dir, "enc.pem"), &pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("junk")})
	if _, _, err := LoadCertificate(certOnly, enc); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted key: %v", err)
	}
	if _, _, err := LoadCertificate(keyOnly, ""); err == nil || strings.Contains(err.Error(), string(keyBlock.Bytes[:8])) {
		t.Errorf("no certificate: %v", err)
	}
}

func TestServiceAccountJWTBearer(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	p := newProvider(t)
	tokenURL := p.srv.URL + "/token"
	var verr error = errors.New("no request")
	p.token = func(w http.ResponseWriter, form url.Values) bool {
		verr = func() error {
			if form.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
				return errors.New("grant_type " + form.Get("grant_type"))
			}
			tok, err := josejwt.ParseSigned(form.Get("assertion"), []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				return err
			}
			var claims struct {
				josejwt.Claims
				Scope string `json:"scope"`
			}
			if err := tok.Claims(&key.PublicKey, &claims); err != nil {
				return err
			}
			if tok.Headers[0].KeyID != "key-id-1" {
				return errors.New("kid " + tok.Headers[0].KeyID)
			}
			if claims.Scope != "https://mail.google.com/" {
				return errors.New("scope " + claims.Scope)
			}
			return claims.Validate(josejwt.Expected{Issuer: "sa@project.iam.gserviceaccount.com", Subject: "user@example.com", AnyAudience: josejwt.Audience{tokenURL}, Time: time.Now()})
		}()
		if verr != nil {
			jsonError(w, 400, "invalid_grant", "Invalid JWT Signature.")
			return true
		}
		p.issue(w, false, nil)
		return true
	}
	keyJSON, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": "sa@project.iam.gserviceaccount.com",
		"private_key": keyPEM, "private_key_id": "key-id-1", "token_uri": tokenURL,
	})
	c := p.client()
	c.Config.Scopes = []string{"https://mail.google.com/"}
	tok, err := c.ServiceAccount(context.Background(), keyJSON, "user@example.com")
	if err != nil || verr != nil {
		t.Fatalf("err = %v, server check = %v", err, verr)
	}
	if tok.AccessToken == "" || strings.Join(tok.Scopes, " ") != "https://mail.google.com/" {
		t.Errorf("token = %v", tok)
	}
	_, err = c.ServiceAccount(context.Background(), keyJSON, "other@example.com")
	if verr == nil || Classify(err).Code != "invalid_grant" {
		t.Errorf("wrong subject accepted: %v", err)
	}
	assertNoSecret(t, "error", err.Error(), []string{keyPEM[40:80]})
	if _, err := c.ServiceAccount(context.Background(), []byte(`{"type":"authorized_user"}`), "u"); err == nil {
		t.Error("non-service-account key accepted")
	}
	if _, err := c.ServiceAccount(context.Background(), []byte(`{"private_key":`+string(keyJSON)), "u"); err == nil || strings.Contains(err.Error(), "PRIVATE") {
		t.Errorf("bad json: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	p := newProvider(t)
	c := p.client()
	if err := c.Revoke(context.Background(), "rt-to-revoke", "refresh_token"); err != nil {
		t.Fatal(err)
	}
	if p.tokenForm.Get("token") != "rt-to-revoke" || p.tokenForm.Get("token_type_hint") != "refresh_token" || p.tokenForm.Get("client_id") != "client-id" {
		t.Errorf("revocation request = %v", p.tokenForm)
	}
	if err := c.Revoke(context.Background(), "gone-token", ""); err != nil {
		t.Errorf("already invalid token: %v", err)
	}
	err := c.Revoke(context.Background(), "busy-token", "")
	if e := Classify(err); !e.Temporary() || e.RetryAfter != 7*time.Second {
		t.Errorf("503: %+v", e)
	}
	assertNoSecret(t, "error", err.Error(), []string{"busy-token"})
	c.RevokeURL = ""
	if err := c.Revoke(context.Background(), "x", ""); !errors.Is(err, ErrNoRevocation) {
		t.Errorf("no endpoint: %v", err)
	}
}
