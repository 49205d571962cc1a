package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

const workloadsFile = "workload-svids.bin"

// restartSetup runs a server whose agent SVIDs outlive the workload SVIDs
// (a day against an hour), an agent keeping its state in a data
// directory, and n entries for the test process; it returns them once the
// workload holds every SVID, with the serial of each by SPIFFE ID.
func restartSetup(t *testing.T, n int) (*nodetest.NodeServer, agent.Config, *nodetest.Agent, map[spiffeid.ID]string) {
	t.Helper()
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: newRotation(t),
		Edit: func(c *nodeserver.Config) { c.AgentSVIDTTL = 24 * time.Hour }})
	cfg := s.AgentConfig(t)
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	a := nodetest.StartAgent(t, cfg)
	var last spiffeid.ID
	for k := range n {
		last = s.Register(t, a.ID(), "/w"+string(rune('a'+k))).SPIFFEID
	}
	a.WaitSVID(t, last)
	serials := fetchSerials(t, a)
	require.Len(t, serials, n)
	return s, cfg, a, serials
}

// fetchSerials returns the serial of each X509-SVID the workload holds,
// by SPIFFE ID.
func fetchSerials(t *testing.T, a *nodetest.Agent) map[spiffeid.ID]string {
	t.Helper()
	out := map[spiffeid.ID]string{}
	for _, s := range fetchAll(t, a) {
		out[s.ID] = s.Certificates[0].SerialNumber.Text(16)
	}
	return out
}

// Property: an agent started again while every server is away serves the
// X509-SVIDs it held, the same ones, from its data directory, where they
// are kept with their keys in a file only the agent may read.
func TestRestartedAgentServesSavedSVIDsWithServersAway(t *testing.T) {
	s, cfg, a, serials := restartSetup(t, 3)
	require.NoError(t, a.Stop()) // saves once more as Run returns
	s.Stop()

	info, err := os.Stat(filepath.Join(cfg.DataDir, workloadsFile))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), "it holds private keys")

	logs := &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	b := nodetest.StartAgent(t, cfg)
	assert.Equal(t, serials, fetchSerials(t, b), "the same SVIDs, with no server")
	assert.Equal(t, 3, b.Stats().Entries)
	assert.NoError(t, b.Healthy(), "it serves its workloads")
	assert.True(t, logs.Contains(`msg="serving the saved workload SVIDs until the agent syncs with a server" entries=3 svids=3 expired=0 stale=0`), "%s", logs)
	select {
	case <-b.Synced():
		t.Fatal("synced with no server")
	default:
	}
}

// Property: a saved SVID is never served once it has expired.
func TestRestartedAgentDropsExpiredSVIDs(t *testing.T) {
	s, cfg, a, _ := restartSetup(t, 2)
	require.NoError(t, a.Stop())
	s.Stop()

	logs := &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // past the workload SVIDs' hour
	b := nodetest.StartAgent(t, cfg)
	assert.True(t, logs.Contains(`entries=2 svids=0 expired=2 stale=0`), "%s", logs)
	assert.Equal(t, 2, b.Stats().Entries, "the entries are kept, their SVIDs are not")
}

// Property: an entry deleted while the agent was down is served from the
// saved state only until the agent syncs; then it is gone, and the others
// are served on.
func TestRestartedAgentFollowsTheServerOnceSynced(t *testing.T) {
	s, cfg, a, serials := restartSetup(t, 3)
	require.NoError(t, a.Stop())
	entries, _, err := s.Store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	gone := entries[0]
	_, err = s.Store.Delete(t.Context(), gone.ID, gone.Revision)
	require.NoError(t, err)

	b := nodetest.StartAgent(t, cfg)
	b.WaitSynced(t)
	require.Eventually(t, func() bool { _, ok := fetchSerials(t, b)[gone.SPIFFEID]; return !ok }, nodetest.Timeout, 10*time.Millisecond)
	got := fetchSerials(t, b)
	delete(serials, gone.SPIFFEID)
	assert.Equal(t, serials, got, "the others, the same SVIDs: not minted again")
}

// Property: a workloads file that was changed, cut short or made readable
// by others is refused with an error in the log, and the agent starts
// without it: it serves none of it, and says it has not synced.
func TestRestartedAgentRefusesABadWorkloadsFile(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
		want  string
	}{
		{"a byte changed", func(t *testing.T, path string) {
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			k := len(raw) / 2
			raw[k] ^= 0x01
			require.NoError(t, os.WriteFile(path, raw, 0o600))
		}, "the saved workload SVIDs in"},
		{"cut short", func(t *testing.T, path string) {
			raw, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, raw[:len(raw)*2/3], 0o600))
		}, "the file ends before its end record: it was cut short"},
		{"readable by others", func(t *testing.T, path string) {
			require.NoError(t, os.Chmod(path, 0o644))
		}, "it holds the agent's private key, which only the agent may read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, cfg, a, _ := restartSetup(t, 2)
			require.NoError(t, a.Stop())
			s.Stop()
			tc.spoil(t, filepath.Join(cfg.DataDir, workloadsFile))

			logs := &logtest.Buffer{}
			cfg.Logger = logs.Logger()
			b := nodetest.StartAgent(t, cfg)
			assert.True(t, logs.Contains(`level=ERROR msg="refusing the saved workload SVIDs; starting without them"`), "%s", logs)
			assert.True(t, logs.Contains(tc.want), "%s", logs)
			assert.Zero(t, b.Stats().Entries)
			assert.Error(t, b.Healthy())
		})
	}
}

// Property: what the agent saves follows what it holds: an entry created
// while it runs is in the file after the next save.
func TestAgentSavesNewSVIDs(t *testing.T) {
	agent.SetWorkloadsSaveInterval(t, 50*time.Millisecond)
	s, cfg, a, _ := restartSetup(t, 1)
	web := s.Register(t, a.ID(), "/later")
	a.WaitSVID(t, web.SPIFFEID)
	require.Eventually(t, func() bool {
		raw, err := os.ReadFile(filepath.Join(cfg.DataDir, workloadsFile))
		return err == nil && strings.Contains(string(raw), "spiffe://example.org/later")
	}, nodetest.Timeout, 20*time.Millisecond)
}

// Property: after writing a large workloads file (here, any), the agent
// gives the heap the write and the changes before it left free back to
// the system, which takes a forced collection.
func TestAgentReleasesMemoryAfterALargeSave(t *testing.T) {
	agent.SetWorkloadsSaveInterval(t, 50*time.Millisecond)
	agent.SetReleaseAfterSave(t, 1)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	_, cfg, _, _ := restartSetup(t, 1)
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(cfg.DataDir, workloadsFile))
		var now runtime.MemStats
		runtime.ReadMemStats(&now)
		return err == nil && now.NumForcedGC > before.NumForcedGC
	}, nodetest.Timeout, 20*time.Millisecond)
}

// fetchAll fetches every X509-SVID of the test process from a once.
func fetchAll(t *testing.T, a *nodetest.Agent) []*x509svid.SVID {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	return svids
}
