package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailkey/mailkey/internal/provider"
	"github.com/mailkey/mailkey/internal/store"
)

// discoveryProvider is a provider whose discovery and token endpoints fail
// on demand, each answering 503 while told to.
type discoveryProvider struct {
	*httptest.Server
	mu                       sync.Mutex
	discoverySick, tokenSick bool
	discoveries, refreshes   int
}

func newDiscoveryProvider(t *testing.T) *discoveryProvider {
	t.Helper()
	p := &discoveryProvider{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			p.discoveries++
			if p.discoverySick {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			iss := "http://" + r.Host
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]string{
				"issuer": iss, "authorization_endpoint": iss + "/auth", "token_endpoint": iss + "/token",
			})
		case "/token":
			if r.ParseForm() != nil || r.PostForm.Get("grant_type") != "refresh_token" || r.PostForm.Get("refresh_token") != "rt-1" {
				http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
				return
			}
			p.refreshes++
			if p.tokenSick {
				http.Error(w, "unavailable", http.StatusServiceUnavailable)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","expires_in":3600}`, p.refreshes+1)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *discoveryProvider) counts() (discoveries, refreshes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.discoveries, p.refreshes
}

func (p *discoveryProvider) set(f func(*discoveryProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// issuerAccount writes a configuration with one account known by its
// issuer only, and a store holding a token that expires in expiresIn.
func issuerAccount(t *testing.T, issuer string, expiresIn time.Duration) (stateDir string) {
	t.Helper()
	dir := t.TempDir()
	stateDir = filepath.Join(dir, "state")
	cfg := filepath.Join(dir, "config.toml")
	doc := "[accounts.work]\nprovider = \"generic\"\nissuer = \"" + issuer + "\"\nemail = \"w@example.test\"\nclient_id = \"cid\"\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAILKEY_CONFIG", cfg)
	t.Setenv(store.EnvStateDir, stateDir)
	t.Setenv(store.EnvNoKeyring, "1")
	t.Setenv(store.EnvPassphrase, "")
	putToken(t, stateDir, expiresIn)
	return stateDir
}

func putToken(t *testing.T, stateDir string, expiresIn time.Duration) {
	t.Helper()
	st, err := store.OpenFile(stateDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec := &store.Record{Account: "work", AccessToken: "at-1", TokenType: "Bearer", RefreshToken: "rt-1", Expiry: time.Now().Add(expiresIn)}
	if err := st.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs mailkey with args as a mail client would.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errb)
	waitRefreshers()
	return code, out.String(), errb.String()
}

// ageCache makes every cached discovery document in stateDir stale.
func ageCache(t *testing.T, stateDir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(provider.CacheDir(stateDir), "*.json"))
	if len(files) != 1 {
		t.Fatalf("discovery cache holds %q, want one file", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]any
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	e["fetched"], e["fresh_until"] = long, long
	b, _ = json.Marshal(e)
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTokenNeedsNoDiscovery: mailkey token answers a valid stored token
// from the store alone, and a refresh inside the margin that fails, even
// at the discovery step, hands the current token out.
func TestTokenNeedsNoDiscovery(t *testing.T) {
	p := newDiscoveryProvider(t)
	issuerAccount(t, p.URL, time.Hour)
	if code, out, errs := runCLI("token", "work"); code != 0 || out != "at-1\n" {
		t.Fatalf("valid token: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if d, r := p.counts(); d != 0 || r != 0 {
		t.Errorf("a valid stored token cost %d discovery and %d token requests", d, r)
	}

	// Inside the margin, with the provider down and nothing cached.
	p.set(func(p *discoveryProvider) { p.discoverySick, p.tokenSick = true, true })
	stateDir := issuerAccount(t, p.URL, 2*time.Minute)
	code, out, errs := runCLI("token", "work")
	if code != 0 || out != "at-1\n" {
		t.Fatalf("valid token inside the margin, provider down: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	// mailkey token leaves the early refresh to a detached refresher; run
	// one here, to see what it does.
	code, out, errs = runCLI("background-refresh", "work")
	if code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Fatalf("background refresh inside the margin, provider down: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if !strings.Contains(errs, "using the current token while it lasts") {
		t.Errorf("no warning that the current token is used:\n%s", errs)
	}
	if files, _ := filepath.Glob(filepath.Join(provider.CacheDir(stateDir), "*")); len(files) != 0 {
		t.Errorf("a failed discovery left %q in the cache", files)
	}
}

// TestRefreshUsesDiscoveryCache: once discovered, a refresh needs no
// discovery request; a stale document is fetched again, and while the
// discovery endpoint fails, the stale copy lets the refresh reach the
// token endpoint.
func TestRefreshUsesDiscoveryCache(t *testing.T) {
	p := newDiscoveryProvider(t)
	stateDir := issuerAccount(t, p.URL, -time.Minute)
	if code, out, errs := runCLI("token", "work"); code != 0 || out != "at-2\n" {
		t.Fatalf("first refresh: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if d, r := p.counts(); d != 1 || r != 1 {
		t.Fatalf("first refresh: %d discoveries, %d refreshes; want 1, 1", d, r)
	}

	putToken(t, stateDir, -time.Minute)
	if code, out, errs := runCLI("token", "work"); code != 0 || out != "at-3\n" {
		t.Fatalf("refresh with a fresh cache: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if d, _ := p.counts(); d != 1 {
		t.Errorf("a refresh with a fresh cached document made %d more discovery requests", d-1)
	}

	putToken(t, stateDir, -time.Minute)
	ageCache(t, stateDir)
	if code, out, errs := runCLI("token", "work"); code != 0 || out != "at-4\n" {
		t.Fatalf("refresh with a stale cache: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if d, _ := p.counts(); d != 2 {
		t.Errorf("a stale cached document was not fetched again (%d discoveries)", d)
	}

	putToken(t, stateDir, -time.Minute)
	ageCache(t, stateDir)
	p.set(func(p *discoveryProvider) { p.discoverySick = true })
	code, out, errs := runCLI("token", "work") // the detached refresher's warnings come back
	if code != 0 || out != "at-5\n" {
		t.Fatalf("refresh with a stale cache and the discovery endpoint down: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if !strings.Contains(errs, "using the copy cached at") {
		t.Errorf("no warning that the stale copy is used:\n%s", errs)
	}
	if d, r := p.counts(); d != 3 || r != 4 {
		t.Errorf("%d discoveries, %d refreshes; want 3, 4", d, r)
	}
}

// TestExpiredTokenProviderDown: an expired token and a provider that is
// down fail with the temporary exit status and say that the refresh
// failed: with the document cached, at the token endpoint; without it, at
// discovery.
func TestExpiredTokenProviderDown(t *testing.T) {
	for _, cached := range []bool{true, false} {
		t.Run(fmt.Sprintf("cached=%v", cached), func(t *testing.T) {
			p := newDiscoveryProvider(t)
			stateDir := issuerAccount(t, p.URL, -time.Minute)
			if cached {
				if code, _, errs := runCLI("token", "work"); code != 0 {
					t.Fatalf("first refresh: exit %d: %s", code, errs)
				}
				putToken(t, stateDir, -time.Minute)
			}
			p.Close()
			code, out, errs := runCLI("token", "work")
			if code != 75 || out != "" {
				t.Fatalf("expired token, provider down: exit %d, stdout %q; want 75 and nothing", code, out)
			}
			t.Logf("mailkey token with an expired token, provider down:\n%s", errs)
			if !strings.Contains(errs, "mailkey: error: account work: token refresh failed: ") ||
				strings.Contains(errs, "discovery") == cached || !strings.Contains(errs, "mailkey: hint: ") {
				t.Errorf("stderr does not say the refresh failed, why, and what to do:\n%s", errs)
			}
		})
	}
}

// TestStatusShowsFailedBackgroundRefresh: a detached refresh that fails
// with nobody watching shows in mailkey status until a refresh succeeds.
func TestStatusShowsFailedBackgroundRefresh(t *testing.T) {
	p := newDiscoveryProvider(t)
	issuerAccount(t, p.URL, -time.Minute)
	p.set(func(p *discoveryProvider) { p.discoverySick, p.tokenSick = true, true })
	if code, out, errs := runCLI("background-refresh", "work"); code != 0 || strings.Contains(out, `"ok":true`) {
		t.Fatalf("background refresh, provider down: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	_, out, _ := runCLI("status", "work")
	if !strings.Contains(out, "the last background refresh (") || !strings.Contains(out, "failed: account work") {
		t.Errorf("status does not show the failed background refresh:\n%s", out)
	}
	p.set(func(p *discoveryProvider) { p.discoverySick, p.tokenSick = false, false })
	if code, out, errs := runCLI("background-refresh", "work"); code != 0 || !strings.Contains(out, `"ok":true`) {
		t.Fatalf("background refresh, provider up: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if _, out, _ := runCLI("status", "work"); strings.Contains(out, "background refresh") {
		t.Errorf("status still shows a failed background refresh after one succeeded:\n%s", out)
	}
}
