package agent_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

// Property: a taint the agent learns is in its workloads file soon after,
// not at the next periodic save: an agent that crashes then, and starts
// again with every server away, still knows what it must not serve. The
// periodic save is an hour away here, so only a save the taint itself
// brings on can write it; a taint of a JWT key alone (the tainted CAs
// unchanged) brings one on too.
func TestAgentSavesATaintPromptly(t *testing.T) {
	agent.SetWorkloadsSaveInterval(t, time.Hour)
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Edit: shortTTL(24 * time.Hour)})
	cfg := s.AgentConfig(t)
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	oldCA, oldJWT := m.X509Authority().Certificate(), m.JWTAuthority().KeyID()

	_, err := m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	taintAndAwaitRenewal(t, m, a, oldCA, m.X509Authority().Certificate())
	require.Eventually(t, func() bool {
		cas, _ := agent.SavedTaints(t, cfg.DataDir, td)
		return len(cas) == 1 && cas[0].Equal(oldCA)
	}, nodetest.Timeout, 10*time.Millisecond, "the tainted CA is saved")

	_, err = m.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateJWTKey(t.Context()))
	require.NoError(t, m.TaintJWTKey(t.Context(), oldJWT))
	require.Eventually(t, func() bool {
		cas, jwt := agent.SavedTaints(t, cfg.DataDir, td)
		return len(cas) == 1 && slices.Equal(jwt, []string{oldJWT})
	}, nodetest.Timeout, 10*time.Millisecond, "the tainted JWT key is saved")
}
