package agent_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/agent"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

const oldWorkloadsFile = "workload-svids.jsonl"

// Property: an agent upgraded from one that saved its workloads in a file
// of version 1, started while every server is away, serves the SVIDs of
// that file, the same ones, and replaces it with a file of the current
// version, which serves them at the next start.
func TestRestartedAgentUpgradesAVersion1File(t *testing.T) {
	for name, dates := range map[string]bool{"with dates": true, "first files, without dates": false} {
		t.Run(name, func(t *testing.T) {
			s, cfg, a, serials := restartSetup(t, 3)
			require.NoError(t, a.Stop())
			s.Stop()
			agent.DowngradeWorkloadsFile(t, cfg.DataDir, td, dates)

			logs := &logtest.Buffer{}
			cfg.Logger = logs.Logger()
			b := nodetest.StartAgent(t, cfg)
			assert.Equal(t, serials, fetchSerials(t, b), "the same SVIDs, with no server")
			assert.NoError(t, b.Healthy())
			assert.True(t, logs.Contains(`entries=3 svids=3 expired=0 stale=0`), "%s", logs)
			assert.True(t, logs.Contains(`msg="replaced the saved workload SVIDs of version 1 with a file of the current version" entries=3 svids=3`), "%s", logs)
			assert.NoFileExists(t, filepath.Join(cfg.DataDir, oldWorkloadsFile))
			info, err := os.Stat(filepath.Join(cfg.DataDir, workloadsFile))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())

			require.NoError(t, b.Stop())
			logs = &logtest.Buffer{}
			cfg.Logger = logs.Logger()
			c := nodetest.StartAgent(t, cfg)
			assert.Equal(t, serials, fetchSerials(t, c), "from the file of the current version")
			assert.True(t, logs.Contains(`entries=3 svids=3 expired=0 stale=0`), "%s", logs)
		})
	}
}

// Property: a file of version 1 that was changed is refused with an error
// in the log (the agent starts without it, and does not fail); one whose
// SVIDs have expired gives the entries without them.
func TestRestartedAgentRefusesABadVersion1File(t *testing.T) {
	s, cfg, a, _ := restartSetup(t, 2)
	require.NoError(t, a.Stop())
	s.Stop()
	agent.DowngradeWorkloadsFile(t, cfg.DataDir, td, true)
	path := filepath.Join(cfg.DataDir, oldWorkloadsFile)
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	raw := slices.Clone(good)
	raw[len(raw)/2] ^= 0x01
	require.NoError(t, os.WriteFile(path, raw, 0o600))
	logs := &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	b := nodetest.StartAgent(t, cfg)
	assert.True(t, logs.Contains(`level=ERROR msg="refusing the saved workload SVIDs; starting without them"`), "%s", logs)
	assert.True(t, logs.Contains("the saved workload SVIDs of version 1 in"), "%s", logs)
	assert.Zero(t, b.Stats().Entries)
	assert.Error(t, b.Healthy())
	require.NoError(t, b.Stop())
	assert.NoFileExists(t, filepath.Join(cfg.DataDir, workloadsFile), "nothing to write")

	require.NoError(t, os.WriteFile(path, good, 0o600))
	logs = &logtest.Buffer{}
	cfg.Logger = logs.Logger()
	cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) } // past the workload SVIDs' hour
	c := nodetest.StartAgent(t, cfg)
	assert.True(t, logs.Contains(`entries=2 svids=0 expired=2 stale=0`), "%s", logs)
	assert.Equal(t, 2, c.Stats().Entries, "the entries are kept, their SVIDs are not")
}
