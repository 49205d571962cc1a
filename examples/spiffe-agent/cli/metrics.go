package cli

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Metric names begin with namespace; README.md lists them.
const namespace metrics.Namespace = "spiffekit_agent"

// agentMetrics are the metrics the agent's issuer and Workload API server
// tell of, through their observers. Its methods update counters, gauges
// and histograms, which never block.
type agentMetrics struct {
	apiSeconds   *prometheus.HistogramVec
	streams      *prometheus.GaugeVec
	signed       *prometheus.CounterVec
	signSeconds  *prometheus.HistogramVec
	attestations *prometheus.HistogramVec
	// attestors is the attestor label of workload attestations: the
	// names of the workload attestors, joined by "+" ("unix",
	// "unix+k8s"), which attest each caller together.
	attestors string
}

var (
	_ issuer.Observer   = (*agentMetrics)(nil)
	_ endpoint.Observer = (*agentMetrics)(nil)
)

// newAgentMetrics registers the agent's metrics with reg; attestors is the
// attestor label of workload attestations.
func newAgentMetrics(reg prometheus.Registerer, attestors string) *agentMetrics {
	m := &agentMetrics{
		attestors: attestors,
		apiSeconds: namespace.Histogram("workload_api_request_duration_seconds",
			"How long Workload API calls took to be answered (a stream: its first response), "+
				"by method and gRPC status code; the count is the number of calls.",
			"method", "code"),
		streams: namespace.Gauge("workload_api_streams", "Workload API watch streams open now, by method.", "method"),
		signed: namespace.Counter("svids_signed_total",
			"SVIDs the agent asked its servers to sign, by SVID type (x509, jwt) and outcome (ok, error).",
			"svid_type", "outcome"),
		signSeconds: namespace.Histogram("sign_request_duration_seconds",
			"How long a signing request to the servers took (a batch of X509-SVIDs, or one JWT-SVID), by SVID type.",
			"svid_type"),
		attestations: namespace.Histogram("workload_attestation_duration_seconds",
			"How long attesting a Workload API caller took, by attestor and outcome (ok, rejected, error); "+
				"the count is the number of attestations.",
			"attestor", "outcome"),
	}
	reg.MustRegister(m.apiSeconds, m.streams, m.signed, m.signSeconds, m.attestations)
	return m
}

// Answered implements endpoint.Observer.
func (m *agentMetrics) Answered(method string, code codes.Code, d time.Duration) {
	m.apiSeconds.WithLabelValues(method, code.String()).Observe(d.Seconds())
}

// StreamOpened implements endpoint.Observer.
func (m *agentMetrics) StreamOpened(method string) { m.streams.WithLabelValues(method).Inc() }

// StreamClosed implements endpoint.Observer.
func (m *agentMetrics) StreamClosed(method string, _ codes.Code) {
	m.streams.WithLabelValues(method).Dec()
}

// Signed implements issuer.Observer.
func (m *agentMetrics) Signed(svidType string, n, failed int, d time.Duration) {
	m.signed.WithLabelValues(svidType, "ok").Add(float64(n - failed))
	m.signed.WithLabelValues(svidType, "error").Add(float64(failed))
	m.signSeconds.WithLabelValues(svidType).Observe(d.Seconds())
}

// WorkloadAttested implements issuer.Observer.
func (m *agentMetrics) WorkloadAttested(outcome string, d time.Duration) {
	m.attestations.WithLabelValues(m.attestors, outcome).Observe(d.Seconds())
}

// statsCollector exports the agent's state, read from Stats (memory only)
// at each scrape.
type statsCollector struct {
	a *agent.Agent

	entries, connected, syncs, lastSync, svidExpiry, healthy *prometheus.Desc
}

// newStatsCollector returns the collector of a's state.
func newStatsCollector(a *agent.Agent) *statsCollector {
	desc := namespace.Desc
	return &statsCollector{
		a:          a,
		entries:    desc("entries", "Registration entries the agent holds."),
		connected:  desc("connected", "1 while the entry stream to a server is open, else 0."),
		syncs:      desc("syncs_total", "Sync messages received from the servers."),
		lastSync:   desc("last_sync_timestamp_seconds", "When the last sync message arrived, in Unix seconds; absent before the first."),
		svidExpiry: desc("svid_expiry_timestamp_seconds", "Expiry of the agent's own X509-SVID, in Unix seconds; absent while it holds none."),
		healthy:    desc("healthy", "1 if the agent can serve workloads (an unexpired SVID, synced once), else 0."),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.connected, c.syncs, c.lastSync, c.svidExpiry, c.healthy} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	boolean := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(c.entries, float64(st.Entries))
	gauge(c.connected, boolean(st.Connected))
	ch <- prometheus.MustNewConstMetric(c.syncs, prometheus.CounterValue, float64(st.Syncs))
	if !st.LastSync.IsZero() {
		gauge(c.lastSync, metrics.UnixSeconds(st.LastSync))
	}
	if !st.SVIDExpiresAt.IsZero() {
		gauge(c.svidExpiry, metrics.UnixSeconds(st.SVIDExpiresAt))
	}
	gauge(c.healthy, boolean(c.a.Healthy() == nil))
}
