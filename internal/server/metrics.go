package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailkey/mailkey/internal/proxy"
)

// metrics are what /metrics exports, on a registry of their own.
type metrics struct {
	reg *prometheus.Registry

	dials     *prometheus.CounterVec // upstream connections opened, per protocol
	logins    *prometheus.CounterVec // upstream login outcomes
	forced    *prometheus.CounterVec // forced refreshes after a refused token
	refreshes *prometheus.CounterVec // background refresher outcomes, per account
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailkey_upstream_dials_total",
			Help: "Connections opened to upstream mail servers.",
		}, []string{"protocol"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailkey_upstream_logins_total",
			Help: "Upstream logins by result: ok, refused (the token, after one forced refresh), error.",
		}, []string{"protocol", "result"}),
		forced: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailkey_upstream_forced_refreshes_total",
			Help: "Tokens refreshed because an upstream server refused them.",
		}, []string{"protocol"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailkey_token_refreshes_total",
			Help: "Background token checks by result: refreshed, fresh (nothing to do), transient, permanent (needs a login), client (client configuration rejected), refused.",
		}, []string{"account", "result"}),
	}
	m.reg.MustRegister(m.dials, m.logins, m.forced, m.refreshes,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// proxyCollector exports the proxy's counters, per protocol.
type proxyCollector struct {
	byProto map[string]*proxy.Metrics
}

type proxyMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*proxy.Metrics) int64
}

var proxyMetrics = func() []proxyMetric {
	c := func(name, help string, v func(*proxy.Metrics) int64) proxyMetric {
		return proxyMetric{prometheus.NewDesc(name, help, []string{"protocol"}, nil), prometheus.CounterValue, v}
	}
	g := func(name, help string, v func(*proxy.Metrics) int64) proxyMetric {
		return proxyMetric{prometheus.NewDesc(name, help, []string{"protocol"}, nil), prometheus.GaugeValue, v}
	}
	return []proxyMetric{
		c("mailkey_proxy_connections_total", "Client connections accepted.", func(m *proxy.Metrics) int64 { return m.Accepted.Load() }),
		g("mailkey_proxy_sessions_active", "Client sessions running now.", func(m *proxy.Metrics) int64 { return m.Active.Load() }),
		g("mailkey_proxy_sessions_relaying", "Client sessions relaying to an upstream now.", func(m *proxy.Metrics) int64 { return m.Spliced.Load() }),
		c("mailkey_proxy_connections_refused_total", "Connections refused by the per-source cap.", func(m *proxy.Metrics) int64 { return m.RejectedBusy.Load() }),
		c("mailkey_proxy_logins_ok_total", "Local logins accepted.", func(m *proxy.Metrics) int64 { return m.AuthSucceeded.Load() }),
		c("mailkey_proxy_logins_failed_total", "Local logins refused: wrong app password or unknown user.", func(m *proxy.Metrics) int64 { return m.AuthFailed.Load() }),
		c("mailkey_proxy_logins_rate_limited_total", "Local logins refused by the failed-login limit.", func(m *proxy.Metrics) int64 { return m.RateLimited.Load() }),
		c("mailkey_proxy_upstream_failures_total", "Sessions whose upstream login failed.", func(m *proxy.Metrics) int64 { return m.UpstreamFailed.Load() }),
		c("mailkey_proxy_bad_commands_total", "Refused pre-login commands.", func(m *proxy.Metrics) int64 { return m.BadCommands.Load() }),
		c("mailkey_proxy_starttls_injections_total", "STARTTLS command injections refused.", func(m *proxy.Metrics) int64 { return m.Injections.Load() }),
		c("mailkey_proxy_tls_failures_total", "Failed TLS handshakes with clients.", func(m *proxy.Metrics) int64 { return m.TLSFailures.Load() }),
		c("mailkey_proxy_timeouts_total", "Sessions ended by a timeout.", func(m *proxy.Metrics) int64 { return m.Timeouts.Load() }),
		c("mailkey_proxy_bytes_to_upstream_total", "Bytes relayed from clients to upstream servers.", func(m *proxy.Metrics) int64 { return m.BytesUpstream.Load() }),
		c("mailkey_proxy_bytes_to_client_total", "Bytes relayed from upstream servers to clients.", func(m *proxy.Metrics) int64 { return m.BytesClient.Load() }),
	}
}()

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, pm := range proxyMetrics {
		ch <- pm.desc
	}
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	for proto, m := range c.byProto {
		for _, pm := range proxyMetrics {
			ch <- prometheus.MustNewConstMetric(pm.desc, pm.kind, float64(pm.value(m)), proto)
		}
	}
}
