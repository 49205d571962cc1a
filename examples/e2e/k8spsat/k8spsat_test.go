package k8spsat_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) {
	code := progtest.RunMain(m)
	kubetest.Stop()
	os.Exit(code)
}

// audience is the audience of the agents' projected tokens, the server's
// default.
const audience = "spiffekit-server"

// serverRules are the permissions spiffe-server's README asks for.
var serverRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get"}},
}

// cluster is a cluster as the tests set it up: a namespace with the
// agents' service account, a node, and the server's identity.
type cluster struct {
	c          *kubetest.Cluster
	ns         string
	node       *corev1.Node
	kubeconfig string
}

func newCluster(t *testing.T, c *kubetest.Cluster) *cluster {
	t.Helper()
	cl := &cluster{c: c, ns: c.Namespace(t)}
	c.ServiceAccount(t, cl.ns, "spiffekit-agent")
	cl.node = c.Node(t, map[string]string{"topology.kubernetes.io/zone": "eu-1"}, "10.9.8.7")
	cl.kubeconfig = c.Identity(t, cl.ns, "spiffekit-server", serverRules)
	return cl
}

// agentToken creates an agent pod on the cluster's node and returns it
// with a token bound to it, for aud, in a file as the kubelet projects it.
func (cl *cluster) agentToken(t *testing.T, dir, aud string) (*corev1.Pod, string) {
	t.Helper()
	pod := cl.c.Pod(t, cl.ns, "spiffekit-agent", cl.node, map[string]string{"app": "spiffekit-agent"})
	return pod, writeToken(t, dir, cl.c.Token(t, pod, aud))
}

func writeToken(t *testing.T, dir, token string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "token-*")
	require.NoError(t, err)
	_, err = f.WriteString(token)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return f.Name()
}

// clusterConfig is one cluster of the server's node_attestors.k8s_psat.
func (cl *cluster) clusterConfig() map[string]any {
	return map[string]any{
		"service_account_allow_list": []string{cl.ns + ":spiffekit-agent"},
		"audience":                   []string{audience},
		"kube_config_file":           cl.kubeconfig,
		"allowed_node_label_keys":    []string{"topology.kubernetes.io/zone"},
		"allowed_pod_label_keys":     []string{"app"},
	}
}

// writeServerConfig writes the server's configuration file with the
// clusters (name to clusterConfig).
func writeServerConfig(t *testing.T, path string, clusters map[string]any) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"node_attestors": map[string]any{"k8s_psat": map[string]any{"clusters": clusters}}})
	require.NoError(t, err)
	// Written whole and renamed: the server may read it at any time.
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, b, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// agentArgs are the arguments of a spiffe-agent attesting with k8s_psat,
// with its data and socket under dir/name.
func agentArgs(e *progtest.Env, name, clusterName, tokenFile string) []string {
	return []string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-k8s-psat-cluster", clusterName, "-k8s-psat-token-path", tokenFile,
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
}

// refused runs an agent that must be refused: it exits 1 saying so, and
// the server logs why, in words one of reasons holds.
func refused(t *testing.T, e *progtest.Env, srv *progtest.Proc, name, clusterName, tokenFile string, reasons ...string) {
	t.Helper()
	before := len(srv.Output())
	_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, clusterName, tokenFile)...)
	assert.Equal(t, 1, code, stderr)
	assert.Contains(t, stderr, "refused", stderr)
	var logged string
	progtest.WaitFor(t, "the server to log the refusal", func() bool {
		logged = srv.Output()[before:]
		return strings.Contains(logged, "node attestation refused")
	})
	for _, r := range reasons {
		if strings.Contains(logged, r) {
			return
		}
	}
	t.Errorf("the server refused for another reason than %q:\n%s", reasons, logged)
}

// TestAttestWithProjectedToken runs spiffe-server with k8s_psat against a
// real API server, and spiffe-agent attesting with a real pod-bound
// projected token: the agent gets its k8s_psat ID and selectors, serves an
// SVID to a workload registered under it, and one registered under a node
// alias that selects on the agent's node label. Tokens of the wrong
// audience, of a service account not allowed, and of a deleted pod are
// refused.
func TestAttestWithProjectedToken(t *testing.T) {
	cl := newCluster(t, kubetest.Shared(t))
	dir := progtest.ShortTemp(t)
	config := filepath.Join(dir, "server.json")
	writeServerConfig(t, config, map[string]any{"kind-a": cl.clusterConfig()})
	e := progtest.NewEnv(t, "-config", config)
	srv := e.StartServer()

	_, tokenFile := cl.agentToken(t, dir, audience)
	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", "kind-a", tokenFile)...)
	agentID := "spiffe://example.org/spiffekit/agent/k8s_psat/kind-a/" + string(cl.node.UID)
	progtest.WaitFor(t, "the agent to attest", func() bool {
		out, _, code := progtest.Run(t, nil, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock)
		return code == 0 && strings.Contains(out, agentID)
	}, agent)
	out := progtest.Must(t, e.ServerBin, "agent", "list", "-admin-socket", e.AdminSock, "-spiffe-id", agentID)
	for _, sel := range []string{"k8s_psat:cluster:kind-a", "k8s_psat:agent_ns:" + cl.ns, "k8s_psat:agent_sa:spiffekit-agent",
		"k8s_psat:agent_node_name:" + cl.node.Name, "k8s_psat:agent_node_label:topology.kubernetes.io/zone:eu-1",
		"k8s_psat:agent_pod_label:app:spiffekit-agent", "k8s_psat:agent_node_ip:10.9.8.7"} {
		assert.Contains(t, out, sel)
	}

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	apiSock := filepath.Join(e.Dir, "a.sock")
	e.Entry(agentID, "spiffe://example.org/web", uid)
	// A node alias of every node in zone eu-1, and a workload under it.
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/zone/eu-1", "-selector", "k8s_psat:agent_node_label:topology.kubernetes.io/zone:eu-1")
	e.Entry("spiffe://example.org/zone/eu-1", "spiffe://example.org/zonal", uid)
	progtest.WaitFor(t, "both SVIDs", func() bool {
		out, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", apiSock)
		return code == 0 && strings.Contains(out, "spiffe://example.org/web") && strings.Contains(out, "spiffe://example.org/zonal")
	}, agent)

	// The agent restarts without its data: the same node attests again
	// with the pod's token, under the same ID.
	agent.Stop(t, syscall.SIGKILL)
	require.NoError(t, os.RemoveAll(filepath.Join(e.Dir, "a-data")))
	agent = progtest.Start(t, e.AgentBin, agentArgs(e, "a", "kind-a", tokenFile)...)
	progtest.WaitFor(t, "the agent to attest again", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)
	assert.Contains(t, agent.Output(), agentID)

	t.Run("wrong audience", func(t *testing.T) {
		_, token := cl.agentToken(t, dir, "another-audience")
		refused(t, e, srv, "aud", "kind-a", token, "is invalid for the target audiences")
	})
	t.Run("service account not allowed", func(t *testing.T) {
		cl.c.ServiceAccount(t, cl.ns, "web")
		pod := cl.c.Pod(t, cl.ns, "web", cl.node, nil)
		refused(t, e, srv, "sa", "kind-a", writeToken(t, dir, cl.c.Token(t, pod, audience)), ":web is not allowed")
	})
	t.Run("deleted pod", func(t *testing.T) {
		pod, token := cl.agentToken(t, dir, audience)
		cl.c.DeletePod(t, pod)
		// The API server refuses it, or, while its cache still holds the
		// token, the attestor, which reads the pod.
		refused(t, e, srv, "deleted", "kind-a", token, "service account token has been invalidated", pod.Name+" of the token no longer exists")
	})
	t.Run("cluster not configured", func(t *testing.T) {
		_, token := cl.agentToken(t, dir, audience)
		refused(t, e, srv, "unknown", "kind-z", token, `kind-z\" is not configured`)
	})
	token, err := os.ReadFile(tokenFile)
	require.NoError(t, err)
	assert.NotContains(t, srv.Output(), string(token), "the server never logs a token")
}

// TestClustersReload runs one spiffe-server for two clusters, each with
// its own API server and service account issuer. A token of one cluster
// presented as the other's is refused. Clusters are added and removed by
// rewriting the configuration file and sending SIGHUP, without a restart.
func TestClustersReload(t *testing.T) {
	a := newCluster(t, kubetest.Shared(t))
	b := newCluster(t, kubetest.Start(t))
	dir := progtest.ShortTemp(t)
	config := filepath.Join(dir, "server.json")
	writeServerConfig(t, config, map[string]any{"kind-a": a.clusterConfig()})
	e := progtest.NewEnv(t, "-config", config)
	srv := e.StartServer()

	_, tokenA := a.agentToken(t, dir, audience)
	_, tokenB := b.agentToken(t, dir, audience)
	// B's token, signed by B's issuer, named as A's: A's API server does
	// not authenticate it.
	refused(t, e, srv, "b-as-a", "kind-a", tokenB, "does not authenticate the token")
	// B is not configured yet.
	refused(t, e, srv, "b", "kind-b", tokenB, `kind-b\" is not configured`)

	// Add B and reload: B's agent attests.
	writeServerConfig(t, config, map[string]any{"kind-a": a.clusterConfig(), "kind-b": b.clusterConfig()})
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	progtest.WaitFor(t, "the server to reload its clusters", func() bool {
		return regexp.MustCompile(`clusters reloaded.*kind-a kind-b`).MatchString(srv.Output())
	}, srv)
	agentB := progtest.Start(t, e.AgentBin, agentArgs(e, "b", "kind-b", tokenB)...)
	progtest.WaitFor(t, "B's agent to attest", func() bool { return strings.Contains(agentB.Output(), "agent started") }, agentB)
	assert.Contains(t, agentB.Output(), "spiffe://example.org/spiffekit/agent/k8s_psat/kind-b/"+string(b.node.UID))

	// A configuration that does not read changes nothing.
	require.NoError(t, os.WriteFile(config, []byte(`{"node_attestors": {"k8s_psat": {"clusters": {"kind-a": {"audiance": []}}}}}`), 0o600))
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	progtest.WaitFor(t, "the server to refuse the configuration", func() bool {
		return strings.Contains(srv.Output(), "the clusters stay as they were")
	}, srv)
	refusedBefore := strings.Count(srv.Output(), "the clusters stay as they were")
	require.Equal(t, 1, refusedBefore)

	// Remove A: its nodes can no longer attest; B's still can.
	writeServerConfig(t, config, map[string]any{"kind-b": b.clusterConfig()})
	require.NoError(t, srv.Signal(syscall.SIGHUP))
	progtest.WaitFor(t, "the server to drop cluster A", func() bool {
		return regexp.MustCompile(`clusters reloaded.*clusters="?\[?kind-b\]?"?\n`).MatchString(srv.Output())
	}, srv)
	refused(t, e, srv, "a", "kind-a", tokenA, `kind-a\" is not configured`)
	agentB.Stop(t, syscall.SIGKILL)
	require.NoError(t, os.RemoveAll(filepath.Join(e.Dir, "b-data")))
	agentB = progtest.Start(t, e.AgentBin, agentArgs(e, "b", "kind-b", tokenB)...)
	progtest.WaitFor(t, "B's agent to attest again", func() bool { return strings.Contains(agentB.Output(), "agent started") }, agentB)
	for _, f := range []string{tokenA, tokenB} {
		token, err := os.ReadFile(f)
		require.NoError(t, err)
		assert.NotContains(t, srv.Output(), string(token), "the server never logs a token")
	}
}
