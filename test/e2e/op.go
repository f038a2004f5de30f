package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/oauth2"
)

const (
	sigTERM = syscall.SIGTERM
	sigKILL = syscall.SIGKILL
)

// opFiles is the provider: server.mjs and the npm manifest with its lock file (oidc-provider
// 9.13.3). They are installed once per content hash into a shared cache directory.
//
//go:embed op/package.json op/package-lock.json op/server.mjs
var opFiles embed.FS

// opCacheDir is where installOP puts the provider: $MAILKEY_E2E_CACHE, or mailkey-e2e in the
// user cache directory (the temp dir without one).
func opCacheDir() (string, error) {
	if d := os.Getenv("MAILKEY_E2E_CACHE"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir() // no $HOME (some CI runners)
	}
	return filepath.Join(d, "mailkey-e2e"), nil
}

// installOP returns a directory holding server.mjs and its node_modules, running npm ci the
// first time. A file lock keeps parallel test binaries from installing at the same time.
func installOP(ctx context.Context, step func(string, ...any)) (string, error) {
	names := []string{"package.json", "package-lock.json", "server.mjs"}
	h := sha256.New()
	contents := map[string][]byte{}
	for _, n := range names {
		b, err := opFiles.ReadFile("op/" + n)
		if err != nil {
			return "", err
		}
		contents[n] = b
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	base, err := opCacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(base, "op-"+hex.EncodeToString(h.Sum(nil))[:16])
	ready := filepath.Join(dir, ".installed")
	if _, err := os.Stat(ready); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", fmt.Errorf("e2e: %w", err)
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return "", fmt.Errorf("e2e: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(ready); err == nil {
		return dir, nil // another process installed it while we waited
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("e2e: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("e2e: %w", err)
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), contents[n], 0o644); err != nil {
			return "", fmt.Errorf("e2e: %w", err)
		}
	}
	step("installing the OpenID provider's npm packages into %s (once: later starts reuse them)", dir)
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("e2e: npm ci in %s: %v\n%s", dir, err, out)
	}
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return "", fmt.Errorf("e2e: %w", err)
	}
	return dir, nil
}

// startOP starts node server.mjs on s.opPort and waits for /healthz. s.mu must not be held.
func (s *Stack) startOP(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.op != nil && !s.op.exited() {
		return errors.New("e2e: provider already running")
	}
	cmd := exec.Command("node", "server.mjs")
	cmd.Dir = s.opDir
	env := append(os.Environ(),
		"OP_HOST=127.0.0.1",
		"OP_PORT="+strconv.Itoa(s.opPort),
		"OP_ISSUER="+s.Issuer,
		"AT_TTL="+seconds(s.opts.atTTL),
		"RT_TTL="+seconds(s.opts.rtTTL),
		// Authorization and device codes outlive any test (server.mjs: a minute and ten
		// minutes), so that a slow machine cannot let one expire before it is redeemed.
		// WithOPEnv still overrides these.
		"CODE_TTL="+seconds(DefaultAccessTokenTTL),
		"DEVICE_TTL="+seconds(DefaultAccessTokenTTL),
		"DELEGATES="+Shared+"="+Alice,
	)
	if s.opts.autoConsent {
		env = append(env, "AUTO_CONSENT=1")
	}
	if len(s.opts.certJWKS) > 0 {
		env = append(env, "CERT_CLIENT_JWKS="+string(s.opts.certJWKS), "CERT_CLIENT_MAILBOX="+CertMailbox)
	}
	if len(s.opts.saJWKS) > 0 {
		env = append(env, "SA_JWKS="+string(s.opts.saJWKS), "SA_EMAIL="+ServiceAccountEmail, "SA_DOMAIN="+ServiceAccountDomain)
	}
	cmd.Env = append(env, s.opts.opEnv...)
	p, err := startProc("oidc-provider", cmd, filepath.Join(s.Dir, "log", "op.log"))
	if err != nil {
		return err
	}
	s.op = p
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Issuer+"/healthz", nil)
		resp, err := s.client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && !p.exited() { // not another process's answer
				return nil
			}
		}
		if p.exited() {
			return s.startErr("oidc-provider", fmt.Errorf("node exited: %v", p.err), "op.log")
		}
		if ctx.Err() != nil {
			return s.startErr("oidc-provider", fmt.Errorf("/healthz did not answer: %w", ctx.Err()), "op.log")
		}
		time.Sleep(50 * time.Millisecond) // the pace of the polling, not a bound
	}
}

func seconds(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// StopOP stops the provider, as for an outage. Dovecot then answers every OAuth login with a
// temporary failure. The provider keeps its state in memory: every token issued so far is
// lost for good.
func (s *Stack) StopOP() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("e2e: stack closed")
	}
	s.op.stop()
	return nil
}

// StartOP starts the provider again on the same port and issuer, with the lifetimes last set
// (SetTTL). It knows no token issued before. The port stayed reserved for it while it was
// stopped.
func (s *Stack) StartOP() error {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return errors.New("e2e: stack closed")
	}
	return s.startOP(s.ctx)
}

// SetTTL changes the lifetimes of access and refresh tokens issued from now on; a zero
// duration leaves that one unchanged. Whole seconds.
func (s *Stack) SetTTL(at, rt time.Duration) error {
	form := url.Values{}
	if at > 0 {
		form.Set("at", seconds(at))
	}
	if rt > 0 {
		form.Set("rt", seconds(rt))
	}
	if err := s.control("/__test/ttl", form, http.StatusOK); err != nil {
		return err
	}
	s.mu.Lock()
	if at > 0 {
		s.opts.atTTL = at
	}
	if rt > 0 {
		s.opts.rtTTL = rt
	}
	s.mu.Unlock()
	return nil
}

// ErrUnknownToken is returned by DropToken when the provider does not know the token.
var ErrUnknownToken = errors.New("e2e: provider does not know the token")

// DropToken deletes one access or refresh token at the provider, leaving the rest of its grant
// alone: unlike revocation (RFC 7009), which oidc-provider applies to the whole grant, dropping
// an access token keeps its refresh token working.
func (s *Stack) DropToken(token string) error {
	err := s.control("/__test/drop-token", url.Values{"token": {token}}, http.StatusOK)
	var st *statusError
	if errors.As(err, &st) && st.got == http.StatusNotFound {
		return ErrUnknownToken
	}
	return err
}

// FailTokenEndpoint makes the next n requests to the token endpoint answer HTTP 500 with
// {"error":"server_error"}; n = 0 ends such an outage early.
func (s *Stack) FailTokenEndpoint(n int) error {
	return s.control("/__test/fail", url.Values{"n": {strconv.Itoa(n)}}, http.StatusOK)
}

// FailTokenEndpointWith makes the next n requests to the token endpoint answer HTTP status
// with {"error": code}, as a provider does for invalid_client (401) or invalid_scope (400).
func (s *Stack) FailTokenEndpointWith(n, status int, code string) error {
	return s.control("/__test/fail", url.Values{"n": {strconv.Itoa(n)}, "status": {strconv.Itoa(status)}, "error": {code}}, http.StatusOK)
}

// DelayTokenEndpoint slows the next n token-endpoint requests (n < 0: every one) by d. With
// before false the provider handles each request at once, so a refresh token rotates, and
// holds the answer back, as a provider that commits and then stalls does; with before true it
// waits before handling it. d = 0 ends the delay. Any call lets every request and answer the
// previous setting holds go at once, so a test can hold answers with a long d and release them
// when it chooses, without depending on timing.
func (s *Stack) DelayTokenEndpoint(d time.Duration, n int, before bool) error {
	form := url.Values{"ms": {strconv.FormatInt(d.Milliseconds(), 10)}}
	if n >= 0 {
		form.Set("n", strconv.Itoa(n))
	}
	if before {
		form.Set("where", "before")
	}
	return s.control("/__test/delay", form, http.StatusOK)
}

// TokenStats returns the token endpoint's outcomes since the last reset, keyed by grant type
// and outcome: "refresh_token.success", "refresh_token.error.invalid_grant",
// "injected.server_error" (an answer /__test/fail made up). reset starts a new count.
func (s *Stack) TokenStats(reset bool) (map[string]int, error) {
	out := map[string]int{}
	return out, s.query("/__test/stats", reset, &out)
}

// A RefreshAnswer is one successful refresh at the provider (its refresh token has rotated
// by then) and when its answer left.
type RefreshAnswer struct {
	Status   int
	Sent     time.Time // handed to the system, or (not Finished) its connection closed first
	Finished bool
}

// RefreshAnswers returns the provider's successful refreshes since the last reset, in order;
// reset starts a new list. With the time a test killed a process, it tells whether the
// provider had sent its answer by then.
func (s *Stack) RefreshAnswers(reset bool) ([]RefreshAnswer, error) {
	var raw []struct {
		Status   int     `json:"status"`
		Sent     float64 `json:"sent"` // milliseconds since the epoch
		Finished bool    `json:"finished"`
	}
	if err := s.query("/__test/answers", reset, &raw); err != nil {
		return nil, err
	}
	out := make([]RefreshAnswer, len(raw))
	for i, r := range raw {
		out[i] = RefreshAnswer{Status: r.Status, Sent: time.UnixMicro(int64(r.Sent * 1000)), Finished: r.Finished}
	}
	return out, nil
}

// query posts to one of the provider's read-out endpoints (reset=1 with reset) and decodes
// its JSON answer into out.
func (s *Stack) query(path string, reset bool, out any) error {
	form := url.Values{}
	if reset {
		form.Set("reset", "1")
	}
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, s.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("e2e: POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &statusError{path: path, got: resp.StatusCode}
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("e2e: %s: %w", path, err)
	}
	return nil
}

type statusError struct {
	path string
	got  int
}

func (e *statusError) Error() string { return fmt.Sprintf("e2e: POST %s: HTTP %d", e.path, e.got) }

func (s *Stack) control(path string, form url.Values, want int) error {
	got, err := s.postTest(s.ctx, path, form)
	if err != nil {
		return err
	}
	if got != want {
		return &statusError{path: path, got: got}
	}
	return nil
}

// Endpoint returns the provider's authorization, token and device authorization endpoints.
func (s *Stack) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{
		AuthURL:       s.Issuer + "/auth",
		TokenURL:      s.Issuer + "/token",
		DeviceAuthURL: s.Issuer + "/device/auth",
		AuthStyle:     oauth2.AuthStyleInHeader,
	}
}

// OAuth2Config returns a configuration for one of the registered clients. An empty secret
// means a public client (client_id in the request body).
func (s *Stack) OAuth2Config(clientID, secret, redirectURL string, scopes ...string) *oauth2.Config {
	ep := s.Endpoint()
	if secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: redirectURL, Scopes: scopes}
}

// Context returns ctx carrying HTTPClient for golang.org/x/oauth2 calls.
func (s *Stack) Context(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, s.client)
}

// PublicJWKS returns a JSON Web Key Set (RFC 7517) holding pub, an *rsa.PublicKey (alg RS256)
// or a P-256 *ecdsa.PublicKey (alg ES256), under key id kid: what WithCertClientJWKS takes.
func PublicJWKS(pub crypto.PublicKey, kid string) ([]byte, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var key map[string]string
	switch k := pub.(type) {
	case *rsa.PublicKey:
		key = map[string]string{"kty": "RSA", "alg": "RS256", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("e2e: only P-256 ECDSA keys are supported")
		}
		ecdh, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		key = map[string]string{"kty": "EC", "alg": "ES256", "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	default:
		return nil, fmt.Errorf("e2e: unsupported public key type %T", pub)
	}
	key["use"], key["kid"] = "sig", kid
	return json.Marshal(map[string]any{"keys": []any{key}})
}
