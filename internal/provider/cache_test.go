package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// sickProvider serves a discovery document whose answer the test changes:
// the document, a failing status, or a Cache-Control header.
type sickProvider struct {
	*httptest.Server
	mu           sync.Mutex
	requests     int
	status       int                             // 0: 200 with the document
	doc          func(iss string) map[string]any // nil: fullDoc
	cacheControl string
}

func newSickProvider(t *testing.T) *sickProvider {
	t.Helper()
	p := &sickProvider{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		p.requests++
		if p.status != 0 {
			http.Error(w, "down for maintenance", p.status)
			return
		}
		doc := fullDoc
		if p.doc != nil {
			doc = p.doc
		}
		if p.cacheControl != "" {
			w.Header().Set("Cache-Control", p.cacheControl)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc("http://" + r.Host))
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *sickProvider) set(f func(p *sickProvider)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *sickProvider) asked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// testClock is a clock the test moves.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func newTestCache(t *testing.T) (*DiscoveryCache, *testClock, *logBuffer) {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)}
	logs := &logBuffer{}
	c := &DiscoveryCache{
		Dir:    CacheDir(t.TempDir()),
		Now:    clock.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	return c, clock, logs
}

// cacheFile returns the one file in the cache folder.
func cacheFile(t *testing.T, c *DiscoveryCache) string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(c.Dir, "*.json"))
	if err != nil || len(files) != 1 {
		t.Fatalf("cache folder holds %q (%v), want one file", files, err)
	}
	return files[0]
}

func TestCacheFreshDocumentNeedsNoRequest(t *testing.T) {
	p := newSickProvider(t)
	c, clock, _ := newTestCache(t)
	ctx := context.Background()
	first, err := c.Discover(ctx, p.Client(), p.URL)
	if err != nil {
		t.Fatal(err)
	}
	if p.asked() != 1 {
		t.Fatalf("first lookup made %d requests, want 1", p.asked())
	}
	file := cacheFile(t, c)
	for path, want := range map[string]os.FileMode{c.Dir: 0o700, file: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %#o", path, fi.Mode().Perm(), err, want)
		}
	}
	clock.Advance(DefaultCacheMaxAge - time.Minute)
	p.Close() // any request would now fail
	again, err := c.Discover(ctx, p.Client(), p.URL+"/")
	if err != nil {
		t.Fatalf("fresh cached document: %v", err)
	}
	if again.TokenURL != first.TokenURL || again.Issuer != first.Issuer || again.Source != first.Source ||
		again.IntrospectURL != first.IntrospectURL || !again.IssParameter {
		t.Errorf("cached metadata %+v, fetched %+v", again, first)
	}
	if p.asked() != 1 {
		t.Errorf("a fresh cached document cost %d more requests", p.asked()-1)
	}
}

func TestCacheStaleDocumentIsFetchedAgain(t *testing.T) {
	p := newSickProvider(t)
	c, clock, _ := newTestCache(t)
	ctx := context.Background()
	if _, err := c.Discover(ctx, p.Client(), p.URL); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultCacheMaxAge)
	p.set(func(p *sickProvider) {
		p.doc = func(iss string) map[string]any {
			d := fullDoc(iss)
			d["token_endpoint"] = iss + "/token/v2"
			return d
		}
	})
	md, err := c.Discover(ctx, p.Client(), p.URL)
	if err != nil {
		t.Fatal(err)
	}
	if p.asked() != 2 || md.TokenURL != p.URL+"/token/v2" {
		t.Fatalf("stale cache: %d requests, token endpoint %s; want a new fetch", p.asked(), md.TokenURL)
	}
	// The new document replaced the old one, with its own fetch time.
	p.Close()
	clock.Advance(time.Hour)
	md, err = c.Discover(ctx, p.Client(), p.URL)
	if err != nil || md.TokenURL != p.URL+"/token/v2" {
		t.Fatalf("after the refetch: %+v, %v; want the new document from the cache", md, err)
	}
}

func TestCacheHonoursCacheControl(t *testing.T) {
	for _, tc := range []struct {
		header   string
		after    time.Duration
		refetch  bool
		describe string
	}{
		{"max-age=600", 9 * time.Minute, false, "within max-age"},
		{"public, max-age=600", 11 * time.Minute, true, "past max-age"},
		{"max-age=31536000", DefaultCacheMaxAge, true, "a year's max-age is capped"},
		{"no-cache", time.Second, true, "no-cache"},
		{"no-store", time.Second, true, "no-store"},
	} {
		t.Run(tc.describe, func(t *testing.T) {
			p := newSickProvider(t)
			p.set(func(p *sickProvider) { p.cacheControl = tc.header })
			c, clock, _ := newTestCache(t)
			if _, err := c.Discover(context.Background(), p.Client(), p.URL); err != nil {
				t.Fatal(err)
			}
			clock.Advance(tc.after)
			if _, err := c.Discover(context.Background(), p.Client(), p.URL); err != nil {
				t.Fatal(err)
			}
			if got := p.asked() == 2; got != tc.refetch {
				t.Errorf("Cache-Control %q, %s later: refetched %v, want %v", tc.header, tc.after, got, tc.refetch)
			}
		})
	}
}

func TestCacheStandsInWhileProviderIsDown(t *testing.T) {
	for _, tc := range []struct {
		name string
		sick func(p *sickProvider)
	}{
		{"503", func(p *sickProvider) { p.status = http.StatusServiceUnavailable }},
		{"500", func(p *sickProvider) { p.status = http.StatusInternalServerError }},
		{"429", func(p *sickProvider) { p.status = http.StatusTooManyRequests }},
		{"connection refused", func(p *sickProvider) { p.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSickProvider(t)
			c, clock, logs := newTestCache(t)
			ctx := context.Background()
			want, err := c.Discover(ctx, p.Client(), p.URL)
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(3 * DefaultCacheMaxAge)
			tc.sick(p)
			md, err := c.Discover(ctx, p.Client(), p.URL)
			if err != nil {
				t.Fatalf("provider down with a stale cache: %v", err)
			}
			if md.TokenURL != want.TokenURL {
				t.Errorf("token endpoint %s, want the cached %s", md.TokenURL, want.TokenURL)
			}
			if !strings.Contains(logs.String(), "using the copy cached at") {
				t.Errorf("no warning that a stale copy stands in; log:\n%s", logs)
			}
		})
	}
}

// TestCacheAnswersNoOutageWithStaleCopy: a server that answers, but with a
// document that fails the checks, is not an outage: its error is returned,
// and the stale copy is neither used nor replaced.
func TestCacheAnswersNoOutageWithStaleCopy(t *testing.T) {
	p := newSickProvider(t)
	c, clock, _ := newTestCache(t)
	ctx := context.Background()
	if _, err := c.Discover(ctx, p.Client(), p.URL); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(cacheFile(t, c))
	clock.Advance(2 * DefaultCacheMaxAge)
	p.set(func(p *sickProvider) { p.doc = func(string) map[string]any { return fullDoc("https://evil.example") } })
	if md, err := c.Discover(ctx, p.Client(), p.URL); !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("a document naming another issuer: %+v, %v; want ErrIssuerMismatch", md, err)
	}
	if after, _ := os.ReadFile(cacheFile(t, c)); !bytes.Equal(before, after) {
		t.Errorf("a refused document changed the cache file")
	}
}

func TestCacheIgnoresCorruptFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
	}{
		{"garbage", "\x00\x01not json"},
		{"truncated", `{"issuer": "http://127.0.0.1", "fetched": "2026-`},
		{"empty", ""},
		{"no document", `{"issuer": "ISSUER", "source": "ISSUER/.well-known/openid-configuration", "fetched": "2026-12-01T08:00:00Z", "fresh_until": "2027-12-01T08:00:00Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSickProvider(t)
			c, _, _ := newTestCache(t)
			ctx := context.Background()
			if _, err := c.Discover(ctx, p.Client(), p.URL); err != nil {
				t.Fatal(err)
			}
			file := cacheFile(t, c)
			if err := os.WriteFile(file, []byte(strings.ReplaceAll(tc.content, "ISSUER", p.URL)), 0o600); err != nil {
				t.Fatal(err)
			}
			md, err := c.Discover(ctx, p.Client(), p.URL)
			if err != nil || md.TokenURL != p.URL+"/token" {
				t.Fatalf("with a corrupt cache file: %+v, %v; want the fetched document", md, err)
			}
			if p.asked() != 2 {
				t.Errorf("%d requests, want a fetch past the corrupt file", p.asked())
			}
			// The corrupt file was replaced: the next lookup needs no request.
			p.Close()
			if _, err := c.Discover(ctx, p.Client(), p.URL); err != nil {
				t.Errorf("after the corrupt file was replaced: %v", err)
			}
		})
	}
}

// TestCacheRefusesMismatchingCopy: a cache file is checked as a fetched
// document is. One naming another issuer, or holding an endpoint that is
// neither https nor loopback, is not used even while the provider is down.
func TestCacheRefusesMismatchingCopy(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(e map[string]any, issuer string)
	}{
		{"document names another issuer", func(e map[string]any, _ string) {
			e["document"] = fullDoc("https://evil.example")
		}},
		{"entry is for another issuer", func(e map[string]any, _ string) {
			e["issuer"] = "https://evil.example"
		}},
		{"source is not a metadata URL of the issuer", func(e map[string]any, _ string) {
			e["source"] = "https://evil.example/.well-known/openid-configuration"
		}},
		{"plain http token endpoint", func(e map[string]any, issuer string) {
			d := fullDoc(issuer)
			d["token_endpoint"] = "http://token.example/token"
			e["document"] = d
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSickProvider(t)
			c, _, _ := newTestCache(t)
			ctx := context.Background()
			if _, err := c.Discover(ctx, p.Client(), p.URL); err != nil {
				t.Fatal(err)
			}
			file := cacheFile(t, c)
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var e map[string]any
			if err := json.Unmarshal(b, &e); err != nil {
				t.Fatal(err)
			}
			tc.edit(e, p.URL)
			b, _ = json.Marshal(e)
			if err := os.WriteFile(file, b, 0o600); err != nil {
				t.Fatal(err)
			}
			p.set(func(p *sickProvider) { p.status = http.StatusServiceUnavailable })
			if md, err := c.Discover(ctx, p.Client(), p.URL); err == nil || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("with a refused cache file and the provider down: %+v, %v; want the provider's error", md, err)
			}
			p.set(func(p *sickProvider) { p.status = 0 })
			md, err := c.Discover(ctx, p.Client(), p.URL)
			if err != nil || md.TokenURL != p.URL+"/token" {
				t.Fatalf("with a refused cache file: %+v, %v; want the fetched document", md, err)
			}
		})
	}
}

// TestCacheKeepsRefusedDocumentOut: a fetched document that fails the
// checks is not written.
func TestCacheKeepsRefusedDocumentOut(t *testing.T) {
	p := newSickProvider(t)
	p.set(func(p *sickProvider) { p.doc = func(string) map[string]any { return fullDoc("https://evil.example") } })
	c, _, _ := newTestCache(t)
	if _, err := c.Discover(context.Background(), p.Client(), p.URL); !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want ErrIssuerMismatch", err)
	}
	if files, _ := filepath.Glob(filepath.Join(c.Dir, "*")); len(files) != 0 {
		t.Errorf("cache folder holds %q after a refused document", files)
	}
}

// TestCacheWriteFailureIsNoError: a cache folder that cannot be written
// costs a request next time, never the lookup.
func TestCacheWriteFailureIsNoError(t *testing.T) {
	p := newSickProvider(t)
	c, _, logs := newTestCache(t)
	if err := os.WriteFile(c.Dir, []byte("a file where the folder should be"), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.Discover(context.Background(), p.Client(), p.URL); err != nil {
			t.Fatalf("with an unwritable cache: %v", err)
		}
	}
	if p.asked() != 2 || !strings.Contains(logs.String(), "could not be cached") {
		t.Errorf("%d requests, log:\n%s\nwant 2 and a warning", p.asked(), logs)
	}
}

func TestCacheControlMaxAge(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   time.Duration
		known  bool
	}{
		{nil, 0, false},
		{[]string{"public"}, 0, false},
		{[]string{"max-age=300"}, 5 * time.Minute, true},
		{[]string{"public, MAX-AGE=60, must-revalidate"}, time.Minute, true},
		{[]string{`max-age="120"`}, 2 * time.Minute, true},
		{[]string{"max-age=abc"}, 0, false},
		{[]string{"max-age=-5"}, 0, false},
		{[]string{"max-age=600", "no-cache"}, 0, true},
		{[]string{"max-age=99999999999999999"}, time.Duration(1<<63 - 1).Truncate(time.Second), true},
	} {
		got, known := cacheControlMaxAge(tc.values)
		if got != tc.want || known != tc.known {
			t.Errorf("cacheControlMaxAge(%q) = %v, %v; want %v, %v", tc.values, got, known, tc.want, tc.known)
		}
	}
}

// TestDiscoverUnavailable: what may pass by itself matches ErrUnavailable
// (and a network error stays a net.Error); a server that answers wrongly,
// and a caller that gave up, do not.
func TestDiscoverUnavailable(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sick    func(p *sickProvider)
		cancel  bool
		want    bool
		wantNet bool
	}{
		{"503", func(p *sickProvider) { p.status = http.StatusServiceUnavailable }, false, true, false},
		{"502", func(p *sickProvider) { p.status = http.StatusBadGateway }, false, true, false},
		{"429", func(p *sickProvider) { p.status = http.StatusTooManyRequests }, false, true, false},
		{"connection refused", func(p *sickProvider) { p.Close() }, false, true, true},
		{"403", func(p *sickProvider) { p.status = http.StatusForbidden }, false, false, false},
		{"issuer mismatch", func(p *sickProvider) {
			p.doc = func(string) map[string]any { return fullDoc("https://evil.example") }
		}, false, false, false},
		{"caller gave up", func(*sickProvider) {}, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSickProvider(t)
			p.set(tc.sick)
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			_, err := Discover(ctx, p.Client(), p.URL)
			if err == nil {
				t.Fatal("Discover succeeded")
			}
			if got := errors.Is(err, ErrUnavailable); got != tc.want {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tc.want)
			}
			var ne net.Error
			if got := errors.As(err, &ne); got != tc.wantNet {
				t.Errorf("errors.As(%v, net.Error) = %v, want %v", err, got, tc.wantNet)
			}
		})
	}
}
