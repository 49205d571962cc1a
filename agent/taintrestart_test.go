package agent_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Property: an agent that learned that an X.509 CA is tainted while it
// still held a workload's X509-SVID that CA signed (minted on demand, and
// kept, though no workload holds it, until its refresh time) never serves
// that SVID after a restart with every server away: it saved the taint
// with its state, and leaves the SVID out of what it restores; it has a
// new one signed once a server answers.
func TestRestartedAgentServesNoSVIDOfATaintedCA(t *testing.T) {
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Edit: shortTTL(24 * time.Hour)})
	cfg := s.AgentConfig(t)
	cfg.MintOnDemand = true
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	obs := &observed{}
	cfg.APIObserver = obs
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	oldCA := m.X509Authority().Certificate()
	first := a.WaitSVID(t, web.SPIFFEID)
	require.Equal(t, oldCA.Raw, first.Certificates[1].Raw)
	// The agent re-mints at once, off the active CA, the SVID of a stream
	// still open when the CA is tainted: the fetch's stream stays open on
	// the agent's side until it sees the client hang up, after the client
	// has its SVID.
	require.Eventually(t, func() bool {
		return obs.count("closed FetchX509SVID") == obs.count("opened FetchX509SVID")
	}, nodetest.Timeout, 5*time.Millisecond, "the agent sees the fetch's stream end: %v", obs.snapshot())
	cfg.APIObserver = nil

	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	newCA := m.X509Authority().Certificate()
	// The agent renews its own SVID off the tainted CA at once: it has
	// learned of the taint.
	taintAndAwaitRenewal(t, m, a, oldCA, newCA)
	require.NoError(t, a.Stop()) // saves once more as Run returns
	s.Stop()

	logs := &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	b := nodetest.StartAgent(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(b.Addr))
	for _, svid := range svids {
		assert.False(t, bytes.Equal(oldCA.Raw, svid.Certificates[1].Raw), "an X509-SVID of the tainted CA is served (err %v)", err)
	}
	assert.True(t, logs.Contains(`svids=0 expired=0 stale=0 tainted=1`), "%s", logs)

	// Once a server answers, the workload gets an SVID of the active CA.
	nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: s.Store, Addr: s.Addr, Edit: shortTTL(24 * time.Hour)})
	again := b.WaitSVID(t, web.SPIFFEID)
	assert.Equal(t, newCA.Raw, again.Certificates[1].Raw)
}
