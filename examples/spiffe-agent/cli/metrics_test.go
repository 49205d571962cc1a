package cli

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// TestAgentMetrics: what the issuer's and the Workload API server's
// observers are told becomes labelled series.
func TestAgentMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newAgentMetrics(reg, "unix")
	m.StreamOpened("FetchX509SVID")
	m.StreamOpened("FetchX509SVID")
	m.Answered("FetchX509SVID", codes.OK, time.Millisecond)
	m.Answered("FetchJWTSVID", codes.PermissionDenied, time.Millisecond)
	m.StreamClosed("FetchX509SVID", codes.OK)
	m.Signed("x509", 5, 2, 30*time.Millisecond)
	m.Signed("jwt", 1, 0, time.Millisecond)
	m.WorkloadAttested("rejected", time.Millisecond)

	assert.Equal(t, 1.0, testutil.ToFloat64(m.streams.WithLabelValues("FetchX509SVID")), "two opened, one closed")
	assert.Equal(t, 2, testutil.CollectAndCount(m.apiSeconds))
	assert.Equal(t, 3.0, testutil.ToFloat64(m.signed.WithLabelValues("x509", "ok")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.signed.WithLabelValues("x509", "error")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.signed.WithLabelValues("jwt", "ok")))
	assert.Equal(t, 2, testutil.CollectAndCount(m.signSeconds))
	assert.Equal(t, 1, testutil.CollectAndCount(m.attestations))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// BenchmarkAgentMetrics measures what the program's observers cost per
// event, on top of the library's accounting: a Workload API answer, a
// signing request and a workload attestation, each counted in client_golang
// series.
func BenchmarkAgentMetrics(b *testing.B) {
	m := newAgentMetrics(prometheus.NewRegistry(), "unix")
	b.Run("Answered", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Answered("FetchX509SVID", codes.OK, time.Millisecond)
		}
	})
	b.Run("Signed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Signed("x509", 10, 0, time.Millisecond)
		}
	})
	b.Run("WorkloadAttested", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.WorkloadAttested("ok", time.Millisecond)
		}
	})
}
