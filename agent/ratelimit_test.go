package agent_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestRateLimit: the agent's Workload API enforces Config.RateLimit, and
// a refused call is refused before the caller is attested.
func TestRateLimit(t *testing.T) {
	s := startServer(t)
	obs := &observed{}
	cfg := s.AgentConfig(t)
	cfg.IssuerObserver, cfg.APIObserver = obs, obs
	// Two calls, then one per 1,000 s: none comes back during the test.
	cfg.RateLimit = &endpoint.RateLimit{Rate: 0.001, Burst: 2}
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	waitPreMinted(t, obs) // without a call, which would take a token

	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(a.Addr))
	require.Error(t, err)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Equal(t, 2, obs.count("attested ok"), "the refused call was not attested: %v", obs.snapshot())
	assert.Equal(t, 1, obs.count("answered FetchX509SVID ResourceExhausted"), "%v", obs.snapshot())
}
