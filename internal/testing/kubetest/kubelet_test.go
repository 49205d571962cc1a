package kubetest

import (
	"archive/tar"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiffekit/spiffekit/internal/testing/dockertest"
)

// TestKubelet starts containerd and a real kubelet for a node of the
// shared cluster, runs a pod on it from an image made of a static program,
// with a host directory mounted, and finds the pod's container running in
// the kubelet's /pods, which its secure port serves with the certificate
// of CAFile to an authorized caller and to nobody else.
func TestKubelet(t *testing.T) {
	c := Shared(t)
	sleeper := dockertest.Sleeper(t)
	k := c.StartKubelet(t, sleeper)
	assert.True(t, strings.HasPrefix(k.NodeName, "kubelet-"), k.NodeName)
	k.ImportImage(t, "spiffekit.test/sleep:1", sleeper)

	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "w")
	host := t.TempDir()
	pod, err := c.Client.CoreV1().Pods(ns).Create(t.Context(),
		k.HostPod(ns, "p", "w", "spiffekit.test/sleep:1", map[string]string{"app": "p"}, map[string]string{host: "/mnt"}),
		metav1.CreateOptions{})
	require.NoError(t, err)
	require.Len(t, pod.Spec.Volumes, 1)
	assert.Equal(t, host, pod.Spec.Volumes[0].HostPath.Path)

	ca, err := os.ReadFile(k.CAFile)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(ca))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	url := fmt.Sprintf("https://127.0.0.1:%d/pods", k.Port)
	pods := func(token string) (int, corev1.PodList) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var list corev1.PodList
		if resp.StatusCode == http.StatusOK {
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		}
		return resp.StatusCode, list
	}

	var running *corev1.Pod
	deadline := time.Now().Add(2 * time.Minute)
	for running == nil && time.Now().Before(deadline) {
		code, list := pods(c.adminToken)
		require.Equal(t, http.StatusOK, code)
		for i, p := range list.Items {
			if p.UID == pod.UID && p.Status.Phase == corev1.PodRunning {
				running = &list.Items[i]
			}
		}
		if running == nil {
			time.Sleep(200 * time.Millisecond)
		}
	}
	require.NotNil(t, running, "the pod runs on the kubelet; its log:\n%s", k.Log())
	require.Len(t, running.Status.ContainerStatuses, 1)
	assert.True(t, strings.HasPrefix(running.Status.ContainerStatuses[0].ContainerID, "containerd://"),
		running.Status.ContainerStatuses[0].ContainerID)

	code, _ := pods("")
	assert.Equal(t, http.StatusUnauthorized, code, "no anonymous access to the kubelet")
	assert.NotEmpty(t, k.Log())
}

// TestImageArchive: an image's archive holds its one layer, its config and
// a manifest naming its tag, as containerd's import reads them; a program
// that cannot be read is an error.
func TestImageArchive(t *testing.T) {
	_, err := imageArchive("x:1", filepath.Join(t.TempDir(), "none"))
	require.Error(t, err)

	bin := filepath.Join(t.TempDir(), "prog")
	require.NoError(t, os.WriteFile(bin, []byte("program"), 0o755))
	a, err := imageArchive("spiffekit.test/x:1", bin)
	require.NoError(t, err)
	files := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(a))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = b
	}
	require.Len(t, files, 3)
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	require.NoError(t, json.Unmarshal(files["manifest.json"], &manifest))
	require.Len(t, manifest, 1)
	assert.Equal(t, []string{"spiffekit.test/x:1"}, manifest[0].RepoTags)
	assert.Equal(t, []string{"layer.tar"}, manifest[0].Layers)
	assert.Contains(t, string(files[manifest[0].Config]), `"Entrypoint":["/app"]`)
	lr := tar.NewReader(bytes.NewReader(files["layer.tar"]))
	h, err := lr.Next()
	require.NoError(t, err)
	assert.Equal(t, "app", h.Name)
	prog, err := io.ReadAll(lr)
	require.NoError(t, err)
	assert.Equal(t, "program", string(prog))
}

// TestRemoveLinksInto removes only the links that point under the target.
func TestRemoveLinksInto(t *testing.T) {
	dir, target := t.TempDir(), t.TempDir()
	require.NoError(t, os.Symlink(filepath.Join(target, "a.log"), filepath.Join(dir, "in")))
	require.NoError(t, os.Symlink("/var/log/other.log", filepath.Join(dir, "out")))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "file"), nil, 0o600))
	removeLinksInto(dir, target)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.Equal(t, []string{"file", "out"}, names)
}
