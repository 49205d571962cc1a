package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// deployDir is deploy/ at the repository's root.
const deployDir = "../../../deploy"

// loadDeployed reads a configuration file of deploy/ as run does before
// it reads other files: the keys (unknown ones are refused), their values
// and their combination.
func loadDeployed(t *testing.T, name string, data []byte) *settings {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	var out, errb bytes.Buffer
	_, s, code := parseRun([]string{"-config", path}, &out, &errb)
	require.NotNil(t, s, "%s: exit code %d: %s", name, code, errb.String())
	return s
}

// TestDeployVMConfig: the agent configuration of deploy/vm is one
// spiffe-agent run takes, with the paths the systemd unit gives.
func TestDeployVMConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "vm/agent.json"))
	require.NoError(t, err)
	s := loadDeployed(t, "deploy/vm/agent.json", data)
	require.Equal(t, "example.org", s.trustDomain.Name())
	require.Equal(t, "/var/lib/spiffe-agent", s.dataDir, "the unit's StateDirectory")
	require.Equal(t, DefaultSocket, s.socket, "in the unit's RuntimeDirectory")
	require.Equal(t, "/etc/spiffe-agent/node.pem", s.cfg.X509PoPCert)
	require.Equal(t, "/etc/spiffe-agent/bundle.pem", s.cfg.TrustBundle)

	// The check can fail: a misspelt key is refused.
	bad := bytes.Replace(data, []byte(`"trust_bundle"`), []byte(`"trust_bundel"`), 1)
	path := filepath.Join(t.TempDir(), "agent.json")
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	var out, errb bytes.Buffer
	_, s, _ = parseRun([]string{"-config", path}, &out, &errb)
	require.Nil(t, s)
	require.Contains(t, errb.String(), "trust_bundel")
}
