package cli

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
)

// TestNodeMetrics: what the node API's observer is told becomes labelled
// series; an entry stream counts as a call but stays out of the latency
// histogram.
func TestNodeMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newNodeMetrics(reg)
	m.RPC("Attest", codes.OK, 3*time.Millisecond)
	m.RPC("Attest", codes.PermissionDenied, time.Millisecond)
	m.RPC("Sync", codes.Canceled, time.Hour)
	m.NodeAttested("join_token", "ok")
	m.NodeAttested("join_token", "refused")
	m.NodeAttested("join_token", "refused")
	m.Signed("agent", time.Millisecond, nil)
	m.Signed("jwt", time.Millisecond, errors.New("no key"))

	assert.Equal(t, 1.0, testutil.ToFloat64(m.rpcs.WithLabelValues("Attest", "OK")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.rpcs.WithLabelValues("Attest", "PermissionDenied")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.rpcs.WithLabelValues("Sync", "Canceled")))
	assert.Equal(t, 2, testutil.CollectAndCount(m.rpcSeconds), "Attest OK and PermissionDenied; no Sync")
	assert.Equal(t, 1.0, testutil.ToFloat64(m.attestations.WithLabelValues("join_token", "ok")))
	assert.Equal(t, 2.0, testutil.ToFloat64(m.attestations.WithLabelValues("join_token", "refused")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.signed.WithLabelValues("agent", "ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(m.signed.WithLabelValues("jwt", "error")))
	assert.Equal(t, 2, testutil.CollectAndCount(m.signSeconds))

	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	assert.Empty(t, problems)
	for _, name := range []string{"node_rpcs_total", "node_rpc_duration_seconds", "node_attestations_total",
		"svids_signed_total", "svid_sign_duration_seconds"} {
		n, err := testutil.GatherAndCount(reg, "spiffekit_server_"+name)
		require.NoError(t, err)
		assert.Positive(t, n, name)
	}
}
