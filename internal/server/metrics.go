package server

import (
	"bytes"
	"context"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vm "github.com/VictoriaMetrics/metrics"

	"github.com/mailkey/mailkey/internal/proxy"
)

// metrics are what /metrics exports in the Prometheus text format (version 0.0.4): mailkey's
// counters with their help texts, the proxy's per-protocol counters and gauges, and the Go
// runtime and process figures that github.com/VictoriaMetrics/metrics reads (go_*,
// process_*). Every command of the binary pays for the package initialisation of what serve
// links in, the credential helper too: this library's is a few cgroup files read, where
// Prometheus' client built registries and protobuf descriptors.
type metrics struct {
	dials     *counterVec // upstream connections opened, per protocol
	logins    *counterVec // upstream login outcomes
	forced    *counterVec // forced refreshes after a refused token
	refreshes *counterVec // background refresher outcomes, per account

	byProto map[string]*proxy.Metrics // the proxy's counters; nil until the server has listeners
	// hashes, when set, counts the app password checks that ran argon2id.
	hashes func() int64
	// health, when set, reads the accounts' records for their gauges.
	health func(context.Context) []accountHealth
}

func newMetrics() *metrics {
	// TYPE lines for the runtime and process figures; mailkey's own families write theirs.
	vm.ExposeMetadata(true)
	return &metrics{
		dials: newCounterVec("mailkey_upstream_dials_total",
			"Connections opened to upstream mail servers.", "protocol"),
		logins: newCounterVec("mailkey_upstream_logins_total",
			"Upstream logins by result: ok, refused (the token, after one forced refresh), error.", "protocol", "result"),
		forced: newCounterVec("mailkey_upstream_forced_refreshes_total",
			"Tokens refreshed because an upstream server refused them.", "protocol"),
		refreshes: newCounterVec("mailkey_token_refreshes_total",
			"Background token checks by result: refreshed, fresh (nothing to do), transient, permanent (needs a login), client (client configuration rejected), refused.", "account", "result"),
	}
}

// handler serves the exposition.
func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		m.write(&b)
		if m.health != nil {
			writeAccountGauges(&b, m.health(r.Context()), time.Now())
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Write(b.Bytes())
	})
}

// write writes every family, each with its HELP and TYPE lines before its samples.
func (m *metrics) write(w io.Writer) {
	for _, c := range []*counterVec{m.dials, m.logins, m.forced, m.refreshes} {
		c.write(w)
	}
	if m.hashes != nil {
		writeHeader(w, "mailkey_app_password_hashes_total",
			"App password checks that ran argon2id (a remembered success or failure costs none).", "counter")
		io.WriteString(w, "mailkey_app_password_hashes_total "+strconv.FormatInt(m.hashes(), 10)+"\n")
	}
	protos := make([]string, 0, len(m.byProto))
	for p := range m.byProto {
		protos = append(protos, p)
	}
	slices.Sort(protos)
	if len(protos) > 0 {
		for _, pm := range proxyMetrics {
			writeHeader(w, pm.name, pm.help, pm.kind)
			for _, p := range protos {
				io.WriteString(w, pm.name+`{protocol="`+escapeLabel(p)+`"} `+strconv.FormatInt(pm.value(m.byProto[p]), 10)+"\n")
			}
		}
	}
	vm.WriteProcessMetrics(w)
	vm.WriteFDMetrics(w)
}

// accountGauges are the per-account gauges, read from the store at each
// scrape: an alert on them sees a login needed, or a grant about to die,
// before the mail clients do.
var accountGauges = []struct {
	name, help string
	value      func(h accountHealth, now time.Time) (float64, bool)
}{
	{"mailkey_account_needs_person", "1 when no mail client of the account can log in until a person acts (a login, an unreadable record), else 0.",
		func(h accountHealth, _ time.Time) (float64, bool) {
			if h.needsPerson(nil) != "" {
				return 1, true
			}
			return 0, true
		}},
	{"mailkey_token_expiry_seconds", "Seconds until the stored access token expires (negative: expired; renewed on use).",
		func(h accountHealth, now time.Time) (float64, bool) {
			if h.rec == nil || h.rec.Expiry.IsZero() {
				return 0, false
			}
			return h.rec.Expiry.Sub(now).Seconds(), true
		}},
	{"mailkey_refresh_token_expiry_seconds", "Seconds until the refresh token dies, where the provider said so: a login is needed by then.",
		func(h accountHealth, now time.Time) (float64, bool) {
			if h.rec == nil || h.rec.RefreshExpiry.IsZero() {
				return 0, false
			}
			return h.rec.RefreshExpiry.Sub(now).Seconds(), true
		}},
}

// writeAccountGauges writes accountGauges for the accounts in hs.
func writeAccountGauges(w io.Writer, hs []accountHealth, now time.Time) {
	for _, g := range accountGauges {
		header := false
		for _, h := range hs {
			v, ok := g.value(h, now)
			if !ok {
				continue
			}
			if !header {
				writeHeader(w, g.name, g.help, "gauge")
				header = true
			}
			io.WriteString(w, g.name+`{account="`+escapeLabel(h.name)+`"} `+strconv.FormatFloat(math.Round(v), 'f', -1, 64)+"\n")
		}
	}
}

func writeHeader(w io.Writer, name, help, kind string) {
	io.WriteString(w, "# HELP "+name+" "+help+"\n# TYPE "+name+" "+kind+"\n")
}

// labelEscaper escapes a label value as the text format wants: backslash, double quote and
// line feed.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(v string) string { return labelEscaper.Replace(v) }

// counterVec is a counter family with labels; a label set appears on the first increment.
type counterVec struct {
	name, help string
	labels     []string

	mu     sync.Mutex
	series map[string]*counter // by the rendered label set, {a="x",b="y"}
}

type counter struct{ n atomic.Uint64 }

func (c *counter) Inc() { c.n.Add(1) }

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{name: name, help: help, labels: labels, series: map[string]*counter{}}
}

// WithLabelValues returns the counter for one value per label, in the family's label order.
func (v *counterVec) WithLabelValues(values ...string) *counter {
	if len(values) != len(v.labels) {
		panic("metrics: " + v.name + " takes " + strconv.Itoa(len(v.labels)) + " label values")
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range v.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(l + `="` + escapeLabel(values[i]) + `"`)
	}
	b.WriteByte('}')
	key := b.String()
	v.mu.Lock()
	defer v.mu.Unlock()
	c := v.series[key]
	if c == nil {
		c = new(counter)
		v.series[key] = c
	}
	return c
}

// write writes the family's samples sorted by label set; a family without any writes nothing.
func (v *counterVec) write(w io.Writer) {
	v.mu.Lock()
	keys := make([]string, 0, len(v.series))
	for k := range v.series {
		keys = append(keys, k)
	}
	counters := make([]*counter, 0, len(keys))
	slices.Sort(keys)
	for _, k := range keys {
		counters = append(counters, v.series[k])
	}
	v.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	writeHeader(w, v.name, v.help, "counter")
	for i, k := range keys {
		io.WriteString(w, v.name+k+" "+strconv.FormatUint(counters[i].n.Load(), 10)+"\n")
	}
}

// proxyMetric is one of the proxy's per-protocol figures.
type proxyMetric struct {
	name, help, kind string
	value            func(*proxy.Metrics) int64
}

var proxyMetrics = []proxyMetric{
	{"mailkey_proxy_connections_total", "Client connections accepted.", "counter", func(m *proxy.Metrics) int64 { return m.Accepted.Load() }},
	{"mailkey_proxy_sessions_active", "Client sessions running now.", "gauge", func(m *proxy.Metrics) int64 { return m.Active.Load() }},
	{"mailkey_proxy_sessions_relaying", "Client sessions relaying to an upstream now.", "gauge", func(m *proxy.Metrics) int64 { return m.Spliced.Load() }},
	{"mailkey_proxy_connections_refused_total", "Connections refused by the per-source cap.", "counter", func(m *proxy.Metrics) int64 { return m.RejectedBusy.Load() }},
	{"mailkey_proxy_logins_ok_total", "Local logins accepted.", "counter", func(m *proxy.Metrics) int64 { return m.AuthSucceeded.Load() }},
	{"mailkey_proxy_logins_failed_total", "Local logins refused: wrong app password or unknown user.", "counter", func(m *proxy.Metrics) int64 { return m.AuthFailed.Load() }},
	{"mailkey_proxy_logins_rate_limited_total", "Local logins refused by the failed-login limit.", "counter", func(m *proxy.Metrics) int64 { return m.RateLimited.Load() }},
	{"mailkey_proxy_upstream_failures_total", "Sessions whose upstream login failed.", "counter", func(m *proxy.Metrics) int64 { return m.UpstreamFailed.Load() }},
	{"mailkey_proxy_bad_commands_total", "Refused pre-login commands.", "counter", func(m *proxy.Metrics) int64 { return m.BadCommands.Load() }},
	{"mailkey_proxy_starttls_injections_total", "STARTTLS command injections refused.", "counter", func(m *proxy.Metrics) int64 { return m.Injections.Load() }},
	{"mailkey_proxy_tls_failures_total", "Failed TLS handshakes with clients.", "counter", func(m *proxy.Metrics) int64 { return m.TLSFailures.Load() }},
	{"mailkey_proxy_timeouts_total", "Sessions ended by a timeout.", "counter", func(m *proxy.Metrics) int64 { return m.Timeouts.Load() }},
	{"mailkey_proxy_bytes_to_upstream_total", "Bytes relayed from clients to upstream servers.", "counter", func(m *proxy.Metrics) int64 { return m.BytesUpstream.Load() }},
	{"mailkey_proxy_bytes_to_client_total", "Bytes relayed from upstream servers to clients.", "counter", func(m *proxy.Metrics) int64 { return m.BytesClient.Load() }},
}
