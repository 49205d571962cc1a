package cli

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	issuing "github.com/spiffekit/spiffekit/server"
)

// Metric names begin with namespace; README.md lists them.
const namespace metrics.Namespace = "spiffekit_server"

// nodeMetrics are the metrics of the node API, told by its
// nodeserver.Observer. Its methods update counters and histograms, which never
// block.
type nodeMetrics struct {
	rpcs         *prometheus.CounterVec
	rpcSeconds   *prometheus.HistogramVec
	attestations *prometheus.CounterVec
	signed       *prometheus.CounterVec
	signSeconds  *prometheus.HistogramVec
}

var _ nodeserver.Observer = (*nodeMetrics)(nil)

// newNodeMetrics registers the node API's metrics with reg.
func newNodeMetrics(reg prometheus.Registerer) *nodeMetrics {
	m := &nodeMetrics{
		rpcs: namespace.Counter("node_rpcs_total",
			"Node API calls answered, by method and gRPC status code (Sync included: one per entry stream).",
			"method", "code"),
		rpcSeconds: namespace.Histogram("node_rpc_duration_seconds",
			"How long node API calls took to answer, by method and code; Sync, a stream that lasts, is left out.",
			"method", "code"),
		attestations: namespace.Counter("node_attestations_total",
			"Node attestations, by node attestor and outcome (ok, refused, error).",
			"attestor", "outcome"),
		signed: namespace.Counter("svids_signed_total",
			"SVIDs the CA was asked to sign, by SVID type (agent, x509, jwt) and outcome (ok, error).",
			"svid_type", "outcome"),
		signSeconds: namespace.Histogram("svid_sign_duration_seconds",
			"How long the CA took to sign an SVID, by SVID type.", "svid_type"),
	}
	reg.MustRegister(m.rpcs, m.rpcSeconds, m.attestations, m.signed, m.signSeconds)
	return m
}

// RPC implements nodeserver.Observer.
func (m *nodeMetrics) RPC(method string, code codes.Code, d time.Duration) {
	m.rpcs.WithLabelValues(method, code.String()).Inc()
	if method != "Sync" {
		m.rpcSeconds.WithLabelValues(method, code.String()).Observe(d.Seconds())
	}
}

// NodeAttested implements nodeserver.Observer.
func (m *nodeMetrics) NodeAttested(attestor, outcome string) {
	m.attestations.WithLabelValues(attestor, outcome).Inc()
}

// Signed implements nodeserver.Observer.
func (m *nodeMetrics) Signed(svidType string, d time.Duration, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.signed.WithLabelValues(svidType, outcome).Inc()
	m.signSeconds.WithLabelValues(svidType).Observe(d.Seconds())
}

// statsCollector exports the server's state, read from Stats (memory only)
// at each scrape.
type statsCollector struct {
	s   *issuing.Server
	now func() time.Time

	entries, agents, connected, registrySequence *prometheus.Desc
	caExpiry, nextRotation                       *prometheus.Desc
	bundleAuthorities, bundleSequence            *prometheus.Desc
	federationFetches, federationLastGood        *prometheus.Desc
	skippedAuthorities, handshakesRefused        *prometheus.Desc
}

// newStatsCollector returns the collector of s's state.
func newStatsCollector(s *issuing.Server) *statsCollector {
	desc := namespace.Desc
	return &statsCollector{
		s:         s,
		now:       time.Now,
		entries:   desc("entries", "Registration entries in the server's index."),
		agents:    desc("agents", "Agent records the server knows of, banned agents included."),
		connected: desc("connected_agents", "Agents connected to this server now (open entry streams)."),
		registrySequence: desc("registry_sequence",
			"Sequence number of the last registry change the server's index applied."),
		caExpiry: desc("ca_expiry_seconds",
			"Seconds until the server's active X.509 CA expires (negative once expired); absent while there is none."),
		nextRotation: desc("ca_next_rotation_timestamp_seconds",
			"When the CA's next rotation step falls due, in Unix seconds."),
		bundleAuthorities: desc("bundle_x509_authorities", "X.509 authorities in the trust domain's bundle."),
		bundleSequence:    desc("bundle_sequence", "Sequence number of the trust domain's bundle."),
		federationFetches: desc("federation_fetches_total",
			"Fetches from the bundle endpoint of each federation relationship, by foreign trust domain and outcome (ok, error).",
			"trust_domain", "outcome"),
		federationLastGood: desc("federation_last_fetch_timestamp_seconds",
			"When the last good fetch of a relationship's bundle ended, in Unix seconds; absent before the first.",
			"trust_domain"),
		handshakesRefused: desc("node_handshakes_refused_total",
			"Agents' connections closed because their TLS handshake waited too long for a turn (too many handshakes at once); the agents retry after their backoff."),
		skippedAuthorities: desc("skipped_authorities_total",
			"Authorities and authority marks of a kind this version does not know, published by a later version sharing the database, left out of the server's reads of them (each read counts)."),
	}
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.entries, c.agents, c.connected, c.registrySequence, c.caExpiry, c.nextRotation,
		c.bundleAuthorities, c.bundleSequence, c.federationFetches, c.federationLastGood, c.skippedAuthorities, c.handshakesRefused} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(c.entries, float64(st.Entries))
	gauge(c.agents, float64(st.Agents))
	gauge(c.connected, float64(st.ConnectedAgents))
	gauge(c.registrySequence, float64(c.s.Node().Index().Seq()))
	if !st.CAExpiresAt.IsZero() {
		gauge(c.caExpiry, st.CAExpiresAt.Sub(c.now()).Seconds())
	}
	if next := c.s.CA().NextRotation(); !next.IsZero() {
		gauge(c.nextRotation, metrics.UnixSeconds(next))
	}
	b := c.s.Bundle()
	gauge(c.bundleAuthorities, float64(len(b.X509Authorities())))
	seq, _ := b.SequenceNumber()
	gauge(c.bundleSequence, float64(seq))
	ch <- prometheus.MustNewConstMetric(c.skippedAuthorities, prometheus.CounterValue, float64(st.SkippedAuthorities))
	ch <- prometheus.MustNewConstMetric(c.handshakesRefused, prometheus.CounterValue, float64(st.HandshakesRefused))
	for _, f := range st.Federation {
		td := f.TrustDomain.Name()
		ch <- prometheus.MustNewConstMetric(c.federationFetches, prometheus.CounterValue, float64(f.Fetches), td, "ok")
		ch <- prometheus.MustNewConstMetric(c.federationFetches, prometheus.CounterValue, float64(f.Failures), td, "error")
		if !f.LastFetch.IsZero() {
			gauge(c.federationLastGood, metrics.UnixSeconds(f.LastFetch), td)
		}
	}
}
