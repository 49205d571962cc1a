//go:build !windows

package kit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// TestSpiffekitSDS runs the kit's SDS checks against spiffekit's node
// agent serving SDS beside the Workload API: every MUST rule passes. An
// agent without SDS is refused.
func TestSpiffekitSDS(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	cfg := s.AgentConfig(t)
	cfg.SDS = &sds.Config{}
	a := nodetest.StartAgent(t, cfg)
	a.WaitSVID(t, s.Register(t, a.ID(), "/web").SPIFFEID)

	r, err := kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: a.Addr, Timeout: 20 * time.Second})
	require.NoError(t, err)
	requireAllMustPass(t, r)
	for _, rule := range []string{"SDS rule 1", "SDS rule 2", "SDS rule 3", "SDS rule 4", "SDS rule 5", "X509 rule 15"} {
		assert.Equal(t, kit.Pass, r.Verdicts()[rule], "%s: %s", rule, text(t, r))
	}

	plain := nodetest.StartAgent(t, s.AgentConfig(t))
	_, err = kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: plain.Addr})
	assert.ErrorContains(t, err, "Unimplemented")
	_, err = kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: "tcp://localhost:1"})
	assert.ErrorContains(t, err, "WE rule 8")
}
