package agent_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Property: an agent SVID renewed while the data directory cannot take it
// (a full disk) is used all the same, since the server has recorded it and
// refuses the one it superseded once the agent renews again: the agent
// logs the failure, stays accepted through later renewals, and saves its
// current SVID once the directory takes it again.
func TestRenewedSVIDThatCannotBeSavedIsKept(t *testing.T) {
	store := memstore.New(memstore.Config{})
	// Long enough that a renewal at half life, whose saving (three files,
	// each synced) is slow on a loaded machine, still reaches the server
	// before the SVID expires.
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: newRotation(t), Store: store, Edit: shortTTL(12 * time.Second)})
	dir := t.TempDir()
	logs := &logtest.Buffer{}
	cfg := s.AgentConfig(t)
	cfg.DataDir, cfg.Logger = dir, logs.Logger()
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)

	// A directory in the way of the saved SVID makes every save fail, as a
	// full disk does (root would write through a read-only mode).
	svidFile := filepath.Join(dir, "agent-svid.pem")
	require.NoError(t, os.Remove(svidFile))
	require.NoError(t, os.MkdirAll(filepath.Join(svidFile, "in-the-way"), 0o700))
	first := serial(a)
	require.Eventually(t, func() bool { return serial(a) != first }, 30*time.Second, 20*time.Millisecond)
	second := serial(a)
	require.Eventually(t, func() bool { return serial(a) != second }, 30*time.Second, 20*time.Millisecond)
	assert.True(t, logs.Contains("saving the agent SVID failed"), "the failure is logged:\n%s", logs)

	// Still accepted: an entry made now reaches the workload.
	web := s.Register(t, a.ID(), "/after-renewals")
	assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID)
	assert.False(t, logs.Contains("refused the agent"), "no refusal:\n%s", logs)

	// The directory takes it again: the current SVID is saved.
	require.NoError(t, os.RemoveAll(svidFile))
	require.Eventually(t, func() bool {
		saved, err := x509svid.Load(svidFile, filepath.Join(dir, "agent-key.pem"))
		return err == nil && saved.Certificates[0].SerialNumber.Text(16) == serial(a)
	}, 30*time.Second, 20*time.Millisecond, "the current SVID and its key are saved")
	// And the log says so, whether the renew loop saved it again or a
	// renewal saved its own: that is when a kill no longer loses it.
	require.Eventually(t, func() bool { return logs.Contains("saved the agent SVID") }, 30*time.Second, 20*time.Millisecond, "%s", logs)
	require.NoError(t, a.Healthy())
}
