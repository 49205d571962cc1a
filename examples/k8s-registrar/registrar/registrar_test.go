package registrar_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/examples/k8s-registrar/registrar"
	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func writeTemplates(t *testing.T, doc string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "templates.json")
	require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// TestRegistersPodsThroughTheAdminAPI runs the program against a real API
// server and a real issuing server's admin socket.
func TestRegistersPodsThroughTheAdminAPI(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "web")
	node := c.Node(t, nil, "")
	dir, err := os.MkdirTemp("", "k8sreg") // short: a unix socket's path is
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "admin.sock")
	srv := nodetest.StartServer(t, server.Config{AdminSocket: socket})
	td := nodetest.TrustDomain
	templates := writeTemplates(t, `[{"name": "by-sa",
		"spiffeIDTemplate": "spiffe://{{ .TrustDomain }}/ns/{{ .PodMeta.Namespace }}/sa/{{ .PodSpec.ServiceAccountName }}",
		"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "`+ns+`"}},
		"ttl": "1h"}]`)

	// An entry made by hand stays.
	byHand, err := srv.Admin.CreateEntry(t.Context(), registry.Entry{
		SPIFFEID: spiffeid.RequireFromPath(td, "/by-hand"), ParentID: spiffeid.RequireFromPath(td, "/spiffekit/agent/x"),
		Selectors: []attest.Selector{{Type: "k8s", Value: "ns:" + ns}},
	})
	require.NoError(t, err)

	// A pod there before the program starts: its entry is made in a batch.
	c.ServiceAccount(t, ns, "early")
	early := c.Pod(t, ns, "early", node, nil)

	ctx, cancel := context.WithCancel(t.Context())
	var logs logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- registrar.Main(ctx, []string{"-admin-socket", socket, "-trust-domain", td.Name(), "-cluster", "prod",
			"-templates", templates, "-kubeconfig", c.AdminKubeconfig}, &logs)
	}()
	// wait waits a bounded time for n entries with the ID.
	wait := func(id spiffeid.ID, n int) []registry.Entry {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			got, err := srv.Admin.ListEntries(t.Context(), registry.Filter{BySPIFFEID: id})
			require.NoError(t, err)
			if len(got) == n || time.Now().After(deadline) {
				require.Len(t, got, n, "entries of %s; logs:\n%s", id, logs.String())
				return got
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait(spiffeid.RequireFromPath(td, "/ns/"+ns+"/sa/early"), 1)

	// A pod made while the program runs: its entry is made on its own.
	pod := c.Pod(t, ns, "web", node, nil)
	got := wait(spiffeid.RequireFromPath(td, "/ns/"+ns+"/sa/web"), 1)
	assert.Equal(t, spiffeid.RequireFromPath(td, "/spiffekit/agent/k8s_psat/prod/"+string(node.UID)), got[0].ParentID)
	assert.Equal(t, time.Hour, got[0].X509SVIDTTL)

	c.DeletePod(t, pod)
	c.DeletePod(t, early)
	deadline := time.Now().Add(time.Minute)
	for {
		got, err = srv.Admin.ListEntries(t.Context(), registry.Filter{})
		require.NoError(t, err)
		if len(got) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Len(t, got, 1, "the entry by hand only")
	assert.Equal(t, byHand.ID, got[0].ID)

	cancel()
	assert.Equal(t, cmdline.ExitOK, <-done)
}

func TestUsage(t *testing.T) {
	good := writeTemplates(t, `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/{{ .PodMeta.Name }}"}]`)
	bad := writeTemplates(t, `[{"name": "a"}]`)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"help", []string{"-h"}, cmdline.ExitOK, "-templates"},
		{"unknown flag", []string{"-nope"}, cmdline.ExitUsage, "flag provided but not defined"},
		{"stray argument", []string{"-trust-domain", "example.org", "x"}, cmdline.ExitUsage, `unexpected argument "x"`},
		{"no trust domain", []string{"-cluster", "c", "-templates", good}, cmdline.ExitUsage, "-trust-domain is required"},
		{"bad trust domain", []string{"-trust-domain", "Bad Domain", "-cluster", "c", "-templates", good}, cmdline.ExitUsage, "-trust-domain:"},
		{"no cluster", []string{"-trust-domain", "example.org", "-templates", good}, cmdline.ExitUsage, "-cluster is required"},
		{"no templates", []string{"-trust-domain", "example.org", "-cluster", "c"}, cmdline.ExitUsage, "-templates is required"},
		{"templates missing", []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", "/nonexistent.json"}, cmdline.ExitUsage, "no such file"},
		{"bad templates", []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", bad}, cmdline.ExitUsage, "spiffeIDTemplate is missing"},
		{"bad cluster", []string{"-trust-domain", "example.org", "-cluster", "a/b", "-templates", good, "-kubeconfig", writeKubeconfig(t)}, cmdline.ExitUsage, "cannot be part of an agent ID"},
		{"bad kubeconfig", []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", good, "-kubeconfig", "/nonexistent"}, cmdline.ExitFailure, "Kubernetes client configuration"},
		{"not in a cluster", []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", good}, cmdline.ExitFailure, "Kubernetes client configuration"},
		{"server not there", []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", good, "-kubeconfig", writeKubeconfig(t), "-admin-socket", filepath.Join(t.TempDir(), "none.sock")}, cmdline.ExitFailure, "k8sreg: reading the controller's entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			code := registrar.Main(t.Context(), tt.args, &out)
			assert.Equal(t, tt.code, code, out.String())
			assert.Contains(t, out.String(), tt.want)
		})
	}
}

// writeKubeconfig writes a kubeconfig of a server that is never asked.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))
	return path
}

// TestAdminSocketFromEnvironment: without -admin-socket, the socket is
// SPIFFE_SERVER_ADMIN_SOCKET's, as for spiffe-server's own commands; the
// error names the socket tried.
func TestAdminSocketFromEnvironment(t *testing.T) {
	good := writeTemplates(t, `[{"name": "a", "spiffeIDTemplate": "spiffe://example.org/{{ .PodMeta.Name }}"}]`)
	sock := filepath.Join(t.TempDir(), "env.sock")
	t.Setenv("SPIFFE_SERVER_ADMIN_SOCKET", sock)
	var out strings.Builder
	code := registrar.Main(t.Context(), []string{"-trust-domain", "example.org", "-cluster", "c", "-templates", good,
		"-kubeconfig", writeKubeconfig(t)}, &out)
	assert.Equal(t, cmdline.ExitFailure, code, out.String())
	assert.Contains(t, out.String(), sock)
}
