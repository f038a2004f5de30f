package server

import (
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mailkey/mailkey/internal/proxy"
)

// sampleLine is one sample of the Prometheus text format (version 0.0.4): a name, optional
// labels with quoted values, and a value.
var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"(?:, ?[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*")*\})? (\S+)$`)

// parseExposition checks the text format's rules that a scraper relies on: every sample's family
// has exactly one TYPE line, before its samples, and a family's samples are not split up. It
// returns the TYPE of each family and the samples by name and labels.
func parseExposition(t *testing.T, text string) (types map[string]string, samples map[string]string) {
	t.Helper()
	types, samples = map[string]string{}, map[string]string{}
	done := map[string]bool{} // families whose samples ended
	var current string
	family := func(name string) string {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && (types[base] == "histogram" || types[base] == "summary") {
				return base
			}
		}
		return name
	}
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "# TYPE "):
			f := strings.Fields(l)
			if len(f) != 4 {
				t.Fatalf("line %d: %q", i+1, l)
			}
			if _, dup := types[f[2]]; dup {
				t.Fatalf("line %d: second TYPE for %s", i+1, f[2])
			}
			types[f[2]] = f[3]
		case strings.HasPrefix(l, "# HELP "):
		case strings.HasPrefix(l, "#"):
			t.Fatalf("line %d: unknown comment %q", i+1, l)
		default:
			m := sampleLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("line %d: not a sample: %q", i+1, l)
			}
			fam := family(m[1])
			if _, ok := types[fam]; !ok {
				t.Fatalf("line %d: %s has no TYPE before its samples", i+1, fam)
			}
			if fam != current {
				if done[fam] {
					t.Fatalf("line %d: the samples of %s are split up", i+1, fam)
				}
				done[current], current = true, fam
			}
			samples[m[1]+m[2]] = m[3]
		}
	}
	return types, samples
}

func TestMetricsExposition(t *testing.T) {
	m := newMetrics()
	m.dials.WithLabelValues("imap").Inc()
	m.dials.WithLabelValues("imap").Inc()
	m.dials.WithLabelValues("smtp").Inc()
	m.logins.WithLabelValues("imap", "ok").Inc()
	m.refreshes.WithLabelValues(`we"ird\name`, "refreshed").Inc()
	imap := new(proxy.Metrics)
	imap.Accepted.Add(3)
	imap.Active.Add(1)
	m.byProto = map[string]*proxy.Metrics{"imap": imap, "pop3": new(proxy.Metrics)}

	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	text := rec.Body.String()
	if os.Getenv("MAILKEY_METRICS_OUT") != "" {
		os.WriteFile(os.Getenv("MAILKEY_METRICS_OUT"), []byte(text), 0o644)
	}
	types, samples := parseExposition(t, text)
	for name, want := range map[string]string{
		`mailkey_upstream_dials_total{protocol="imap"}`:                             "2",
		`mailkey_upstream_dials_total{protocol="smtp"}`:                             "1",
		`mailkey_upstream_logins_total{protocol="imap",result="ok"}`:                "1",
		`mailkey_token_refreshes_total{account="we\"ird\\name",result="refreshed"}`: "1",
		`mailkey_proxy_connections_total{protocol="imap"}`:                          "3",
		`mailkey_proxy_connections_total{protocol="pop3"}`:                          "0",
		`mailkey_proxy_sessions_active{protocol="imap"}`:                            "1",
	} {
		if got := samples[name]; got != want {
			t.Errorf("%s = %q, want %s", name, got, want)
		}
	}
	for name, want := range map[string]string{
		"mailkey_upstream_dials_total": "counter", "mailkey_proxy_sessions_active": "gauge",
		"mailkey_proxy_bytes_to_client_total": "counter", "go_goroutines": "gauge",
		"go_memstats_heap_alloc_bytes": "gauge", "go_memstats_heap_inuse_bytes": "gauge",
		"go_memstats_stack_inuse_bytes": "gauge", "go_memstats_next_gc_bytes": "gauge",
		"process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter", "process_open_fds": "gauge",
	} {
		if types[name] != want {
			t.Errorf("TYPE of %s = %q, want %s", name, types[name], want)
		}
	}
	if !strings.Contains(text, "# HELP mailkey_upstream_dials_total Connections opened to upstream mail servers.\n") {
		t.Error("mailkey's families lack their help texts")
	}
	// a family nothing was counted in yet has no samples, and so no lines
	if strings.Contains(text, "mailkey_upstream_forced_refreshes_total") {
		t.Error("an empty family is exposed")
	}
}
