package cli

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

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

// configMapData returns the value of key in the ConfigMap name of a
// manifest file of deploy/.
func configMapData(t *testing.T, file, name, key string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(deployDir, file))
	require.NoError(t, err)
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var cm corev1.ConfigMap
		err := dec.Decode(&cm)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, file)
		if cm.Kind == "ConfigMap" && cm.Name == name {
			v, ok := cm.Data[key]
			require.True(t, ok, "%s: ConfigMap %s has no %s", file, name, key)
			return []byte(v)
		}
	}
	t.Fatalf("%s: no ConfigMap %s", file, name)
	return nil
}

// TestDeployKubernetesConfig: the server configuration of
// deploy/kubernetes is one spiffe-server run takes, with k8s_psat on.
func TestDeployKubernetesConfig(t *testing.T) {
	rc := loadDeployed(t, "deploy/kubernetes/server.yaml", configMapData(t, "kubernetes/server.yaml", "spiffe-server", "server.json"))
	require.NotNil(t, rc.K8sPSAT, "k8s_psat is on")
	require.Contains(t, rc.K8sPSAT.Clusters, "demo")
	require.Equal(t, "/var/lib/spiffe-server", rc.DataDir)
	require.Equal(t, DefaultAdminSocket, rc.AdminSocket, "where healthcheck, the probes' command, looks")
}
