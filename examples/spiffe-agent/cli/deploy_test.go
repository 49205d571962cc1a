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

// TestDeployKubernetesConfig: the agent configuration of
// deploy/kubernetes is one spiffe-agent run takes: k8s_psat, and the unix
// and k8s workload attestors.
func TestDeployKubernetesConfig(t *testing.T) {
	s := loadDeployed(t, "deploy/kubernetes/agent.yaml", configMapData(t, "kubernetes/agent.yaml", "spiffe-agent", "agent.json"))
	require.Equal(t, "demo", s.cfg.K8sPSATCluster)
	require.Equal(t, "/var/run/secrets/tokens/spiffe-agent", s.cfg.K8sPSATTokenPath)
	require.NotNil(t, s.k8s, "the k8s workload attestor is on")
	require.Equal(t, DefaultSocket, s.socket, "where the probe's healthcheck looks")
}
