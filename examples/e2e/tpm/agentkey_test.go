package tpm_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

// tpmKeyConfig writes a spiffe-agent configuration file naming the TPM at
// socket for the agent's key, and returns its path.
func tpmKeyConfig(t *testing.T, dir, name, socket string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"key_manager": map[string]any{"tpm": map[string]any{"device_path": socket}}})
	require.NoError(t, err)
	path := filepath.Join(dir, name+".json")
	require.NoError(t, os.WriteFile(path, b, 0o600))
	return path
}

// TestAgentKeyInTPM runs spiffe-server and spiffe-agent with
// key_manager.tpm: the agent's key is made by a software TPM and its
// data directory keeps only the key's blob; restarted without a join
// token, the agent reuses its saved SVID and the same TPM key, syncs and
// serves; its data directory copied beside another TPM is refused there,
// the log saying the TPM refuses the file.
func TestAgentKeyInTPM(t *testing.T) {
	tpms := swtpmtest.NewN(t, swtpmtest.NewCA(t), swtpmtest.NewCA(t))
	e := progtest.NewEnv(t)
	e.StartServer()
	config := tpmKeyConfig(t, e.Dir, "agent", tpms[0].Socket)
	data := filepath.Join(e.Dir, "agent-data")
	agent := progtest.Start(t, e.AgentBin, append(e.AgentArgs(e.Token()), "-config", config)...)
	progtest.WaitFor(t, "the agent to start", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)
	assert.Contains(t, agent.Output(), "key_manager=tpm")
	agentID := e.AgentID()
	e.Entry(agentID, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the workload's SVID", func() bool {
		out, code := e.Fetch()
		return code == 0 && strings.Contains(out, "spiffe://example.org/web")
	}, agent)

	info, err := os.Stat(filepath.Join(data, "agent-key.tpmkey"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	assert.False(t, progtest.Exists(filepath.Join(data, "agent-key.pem")), "no key in clear")
	blob, err := os.ReadFile(filepath.Join(data, "agent-key.tpmkey"))
	require.NoError(t, err)
	_, err = pemutil.ParsePrivateKey(blob)
	require.Error(t, err)
	svidPEM, err := os.ReadFile(filepath.Join(data, "agent-svid.pem"))
	require.NoError(t, err)

	// Restarted without a join token, on the same TPM: the saved SVID,
	// whose key the TPM still holds, and a sync over TLS the TPM signs.
	require.Equal(t, 0, agent.Stop(t, syscall.SIGTERM))
	args := []string{"run", "-trust-domain", "example.org", "-trust-bundle", e.BundleFile, "-server", e.Bind,
		"-socket", e.APISock, "-data-dir", data, "-config", config}
	agent = progtest.Start(t, e.AgentBin, args...)
	progtest.WaitFor(t, "the agent to sync again", func() bool { return strings.Contains(agent.Output(), "synced with the server") }, agent)
	assert.Contains(t, agent.Output(), "reusing the saved agent SVID")
	assert.Contains(t, agent.Output(), agentID)
	out, code := e.Fetch()
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "spiffe://example.org/web")
	again, err := os.ReadFile(filepath.Join(data, "agent-svid.pem"))
	require.NoError(t, err)
	assert.Equal(t, string(svidPEM), string(again), "the same SVID")
	require.Equal(t, 0, agent.Stop(t, syscall.SIGTERM))

	// The data directory on a machine with another TPM.
	copied := filepath.Join(e.Dir, "copied-data")
	require.NoError(t, os.Mkdir(copied, 0o700))
	for _, name := range []string{"agent-svid.pem", "agent-key.tpmkey", "bundle.json"} {
		b, err := os.ReadFile(filepath.Join(data, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(copied, name), b, 0o600))
	}
	other := tpmKeyConfig(t, e.Dir, "other", tpms[1].Socket)
	stdout, stderr, code := progtest.Run(t, nil, e.AgentBin, "run", "-trust-domain", "example.org", "-trust-bundle", e.BundleFile,
		"-server", e.Bind, "-socket", filepath.Join(e.Dir, "other.sock"), "-data-dir", copied, "-config", other)
	assert.Equal(t, 1, code, stdout+stderr)
	assert.Contains(t, stderr, "the TPM refuses its file (made by another TPM, or altered)")
	assert.Contains(t, stderr, "no node attestor configured, and no usable agent SVID saved in the data directory")
}
