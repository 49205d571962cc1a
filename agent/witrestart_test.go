package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// witRestartSetup runs a server whose CA keeps a WIT key and whose agent
// SVIDs outlive the workload SVIDs (a day against an hour), an agent with
// WIT-SVIDs on keeping its state in a data directory, and an entry for
// the test process; it returns them once the workload fetched its
// WIT-SVID, with that WIT-SVID, after the agent and the server stopped.
func witRestartSetup(t *testing.T) (agent.Config, *witsvid.SVID) {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, WITKeys: true})
	require.NoError(t, err)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m,
		Edit: func(c *nodeserver.Config) { c.AgentSVIDTTL = 24 * time.Hour }})
	cfg := s.AgentConfig(t)
	cfg.WITSVIDs = true
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	svid, err := fetchWIT(t, a, nodetest.Timeout)
	require.NoError(t, err)
	require.NoError(t, a.Stop()) // saves once more as Run returns
	s.Stop()
	return cfg, svid
}

// fetchWIT fetches the WIT-SVID of the test process from a, waiting at
// most wait.
func fetchWIT(t *testing.T, a *nodetest.Agent, wait time.Duration) (*witsvid.SVID, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	defer c.Close()
	return c.FetchWITSVID(ctx, "")
}

// Property: an agent with WIT-SVIDs started again while every server is
// away serves the WIT-SVID it held, the same one with the same key, from
// its data directory (the workloads file of version 3, mode 0600).
func TestRestartedAgentServesSavedWITSVIDsWithServersAway(t *testing.T) {
	cfg, want := witRestartSetup(t)
	path := filepath.Join(cfg.DataDir, workloadsFile)
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "it holds private keys")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(string(raw), `{"format":"spiffekit-agent-workloads","version":3,`), "%.80s", raw)

	logs := &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	b := nodetest.StartAgent(t, cfg)
	got, err := fetchWIT(t, b, nodetest.Timeout)
	require.NoError(t, err)
	assert.Equal(t, want.Marshal(), got.Marshal(), "the same WIT-SVID, with no server")
	assert.Equal(t, want.PrivateKey, got.PrivateKey, "with its key")
	assert.True(t, logs.Contains(`svids=1 expired=0 stale=0 wit_svids=1 wit_expired=0 wit_untrusted=0 wit_stale=0`), "%s", logs)
}

// Property: a saved WIT-SVID is never served once it has expired, nor once
// the key that signed it has left the saved bundle (revoked while the
// agent was down), nor when the taints saved with it name that key.
func TestRestartedAgentDropsExpiredAndUntrustedWITSVIDs(t *testing.T) {
	t.Run("expired", func(t *testing.T) {
		cfg, want := witRestartSetup(t)
		logs := &logtest.Buffer{}
		cfg.Logger = logs.Logger()
		cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // past the WIT-SVID's hour
		b := nodetest.StartAgent(t, cfg)
		assert.True(t, logs.Contains(`wit_svids=0 wit_expired=1 wit_untrusted=0`), "%s", logs)
		got, err := fetchWIT(t, b, 2*time.Second)
		if err == nil {
			assert.NotEqual(t, want.Marshal(), got.Marshal())
		}
	})
	t.Run("its key left the bundle", func(t *testing.T) {
		cfg, want := witRestartSetup(t)
		path := filepath.Join(cfg.DataDir, "bundle.json")
		doc, err := os.ReadFile(path)
		require.NoError(t, err)
		b, err := spiffebundle.Parse(td, doc)
		require.NoError(t, err)
		require.True(t, b.HasWITAuthority(want.KeyID))
		b.RemoveWITAuthority(want.KeyID)
		doc, err = b.Marshal()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, doc, 0o644))

		logs := &logtest.Buffer{}
		cfg.Logger = logs.Logger()
		a := nodetest.StartAgent(t, cfg)
		assert.True(t, logs.Contains(`svids=1 expired=0 stale=0 wit_svids=0 wit_expired=0 wit_untrusted=1`), "%s", logs)
		got, err := fetchWIT(t, a, 2*time.Second)
		if err == nil {
			assert.NotEqual(t, want.Marshal(), got.Marshal())
		}
	})
	t.Run("its key tainted", func(t *testing.T) {
		cfg, want := witRestartSetup(t)
		agent.TaintSavedWITKeys(t, cfg.DataDir, td, want.KeyID)
		logs := &logtest.Buffer{}
		cfg.Logger = logs.Logger()
		a := nodetest.StartAgent(t, cfg)
		assert.True(t, logs.Contains(`svids=1 expired=0 stale=0 wit_svids=0 wit_expired=0 wit_untrusted=0 wit_stale=0 wit_tainted=1`), "%s", logs)
		got, err := fetchWIT(t, a, 2*time.Second)
		if err == nil {
			assert.NotEqual(t, want.Marshal(), got.Marshal())
		}
	})
}
