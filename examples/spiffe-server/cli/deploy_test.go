package cli

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	issuing "github.com/spiffekit/spiffekit/server"
)

// deployDir is deploy/ at the repository's root.
const deployDir = "../../../deploy"

// loadDeployed reads a configuration file of deploy/ as run does, up to
// what needs no other file: the keys (unknown ones are refused), their
// values, and the server's checks of the whole configuration.
func loadDeployed(t *testing.T, name string, data []byte) runConfig {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.json")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	var rc runConfig
	var out, errb bytes.Buffer
	code, ok := newRunCommand(&rc).Parse([]string{"-config", path}, &out, &errb)
	require.True(t, ok, "%s: exit code %d: %s", name, code, errb.String())
	require.NoError(t, nodeAttestorKeys(&rc), name)
	cfg, _, err := buildConfig(rc, io.Discard)
	require.NoError(t, err, name)
	require.NoError(t, issuing.Validate(cfg), name)
	return rc
}

// TestDeployVMConfig: the server configuration of deploy/vm is one
// spiffe-server run takes, with the paths the systemd unit gives.
func TestDeployVMConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "vm/server.json"))
	require.NoError(t, err)
	rc := loadDeployed(t, "deploy/vm/server.json", data)
	require.Equal(t, "/var/lib/spiffe-server", rc.DataDir, "the unit's StateDirectory")
	require.Equal(t, DefaultAdminSocket, rc.AdminSocket, "in the unit's RuntimeDirectory")
	require.Equal(t, "/etc/spiffe-server/node-ca.pem", rc.X509PoPCABundle)

	// The check can fail: a misspelt key is refused.
	bad := bytes.Replace(data, []byte(`"ca_ttl"`), []byte(`"ca_tll"`), 1)
	path := filepath.Join(t.TempDir(), "server.json")
	require.NoError(t, os.WriteFile(path, bad, 0o600))
	var out, errb bytes.Buffer
	_, ok := newRunCommand(new(runConfig)).Parse([]string{"-config", path}, &out, &errb)
	require.False(t, ok)
	require.Contains(t, errb.String(), "ca_tll")
}
