package kubelet_test

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiffekit/spiffekit/internal/testing/dockertest"
	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) {
	code := progtest.RunMain(m)
	kubetest.Stop()
	os.Exit(code)
}

// longEnv turns the test on: it starts containerd and a kubelet, and runs
// pods, which takes a minute or more and root.
const longEnv = "SPIFFEKIT_LONG"

// podsEnv sets how many pods the test creates, one after the other, to
// measure pod created to SVID held: defaultPods unless set (at most
// maxPods, what a kubelet runs by default besides the agent's pod).
const (
	podsEnv     = "SPIFFEKIT_KUBELET_PODS"
	defaultPods = 10
	maxPods     = 100
)

// podCount reads podsEnv.
func podCount(t *testing.T) int {
	v := os.Getenv(podsEnv)
	if v == "" {
		return defaultPods
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPods {
		t.Fatalf("%s=%q: want a number of pods from 1 to %d", podsEnv, v, maxPods)
	}
	return n
}

// serverRules are the permissions spiffe-server's README asks for.
var serverRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get"}},
}

// agentRules are what the agent's k8s workload attestor needs of the
// kubelet: its /pods.
var agentRules = []rbacv1.PolicyRule{
	{APIGroups: []string{""}, Resources: []string{"nodes/proxy"}, Verbs: []string{"get"}},
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, b, 0o600))
}

// TestPodsGetTheirTemplatesSVIDs runs pods on a real kubelet, registered
// by k8s-registrar from two templates (pods labelled app=a and app=b). The
// process in each pod's container gets the SVID its pod's template names,
// and no other; a process on the host, in no pod, gets none. It measures
// the time from a pod's creation to its process holding its SVID.
func TestPodsGetTheirTemplatesSVIDs(t *testing.T) {
	if os.Getenv(longEnv) != "1" {
		t.Skip("runs a real kubelet and containerd: long mode only; run as root with " + longEnv +
			"=1 SPIFFEKIT_KUBE_BIN=$(./scripts/kube-binaries | tail -1) go test -count=1 -v ./examples/e2e/kubelet")
	}
	pods := podCount(t)
	c := kubetest.Shared(t)
	sleeper := dockertest.Sleeper(t)
	k := c.StartKubelet(t, sleeper)
	k.ImportImage(t, "spiffekit.test/sleep:1", sleeper)
	k.ImportImage(t, "spiffekit.test/svid:1", dockertest.StaticBinary(t, "./examples/e2e/kubelet/testdata/svid"))

	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "workload")
	serverKubeconfig := c.Identity(t, ns, "spiffekit-server", serverRules)
	c.Identity(t, ns, "spiffekit-agent", agentRules)
	dir := progtest.ShortTemp(t)
	kubeletToken := filepath.Join(dir, "kubelet-token")
	require.NoError(t, os.WriteFile(kubeletToken, []byte(c.UnboundToken(t, ns, "spiffekit-agent")), 0o600))

	// The agent's pod, for its projected token: the agent itself runs on
	// the host, as a DaemonSet's pod with hostPID would.
	agentPod, err := c.Client.CoreV1().Pods(ns).Create(t.Context(),
		k.HostPod(ns, "spiffekit-agent", "spiffekit-agent", "spiffekit.test/sleep:1", map[string]string{"app": "spiffekit-agent"}, nil),
		metav1.CreateOptions{})
	require.NoError(t, err)
	psatToken := filepath.Join(dir, "psat-token")
	require.NoError(t, os.WriteFile(psatToken, []byte(c.Token(t, agentPod, "spiffekit-server")), 0o600))

	serverConfig := filepath.Join(dir, "server.json")
	writeJSON(t, serverConfig, map[string]any{"node_attestors": map[string]any{"k8s_psat": map[string]any{"clusters": map[string]any{
		"kind-a": map[string]any{
			"service_account_allow_list": []string{ns + ":spiffekit-agent"},
			"audience":                   []string{"spiffekit-server"},
			"kube_config_file":           serverKubeconfig,
		}}}}})
	e := progtest.NewEnv(t, "-config", serverConfig)
	e.StartServer()

	sockDir, outDir := progtest.ShortTemp(t), progtest.ShortTemp(t)
	apiSock := filepath.Join(sockDir, "api.sock")
	agentConfig := filepath.Join(dir, "agent.json")
	writeJSON(t, agentConfig, map[string]any{
		"trust_domain": "example.org", "servers": []string{e.Bind}, "trust_bundle": e.BundleFile,
		"node_attestor": map[string]any{"k8s_psat": map[string]any{"cluster": "kind-a", "token_path": psatToken}},
		"workload_attestors": map[string]any{"k8s": map[string]any{
			"kubelet_secure_port": k.Port, "kubelet_ca_path": k.CAFile, "token_path": kubeletToken,
		}},
		"socket": apiSock, "data_dir": filepath.Join(dir, "agent-data"),
		// Every pod's process is root: one uid's limit would slow them
		// all down while they poll for their SVIDs.
		"ratelimit": map[string]any{"rate": 0},
	})
	agent := progtest.Start(t, e.AgentBin, "run", "-config", agentConfig)
	progtest.WaitFor(t, "the agent to attest", func() bool { return strings.Contains(agent.Output(), "agent started") }, agent)

	templates := filepath.Join(dir, "templates.json")
	var tpl []map[string]any
	for _, app := range []string{"a", "b"} {
		tpl = append(tpl, map[string]any{
			"name":                      app,
			"spiffeIDTemplate":          "spiffe://{{ .TrustDomain }}/" + app + "/{{ .PodMeta.Name }}",
			"namespaceSelector":         map[string]any{"matchLabels": map[string]string{"kubernetes.io/metadata.name": ns}},
			"podSelector":               map[string]any{"matchLabels": map[string]string{"app": app}},
			"workloadSelectorTemplates": []string{"k8s:container-name:main", "k8s:sa:{{ .PodSpec.ServiceAccountName }}"},
		})
	}
	writeJSON(t, templates, tpl)
	registrarBin := dockertest.StaticBinary(t, "./examples/k8s-registrar")
	registrar := progtest.Start(t, registrarBin, "-trust-domain", "example.org", "-cluster", "kind-a",
		"-templates", templates, "-admin-socket", e.AdminSock, "-kubeconfig", c.AdminKubeconfig)

	// From the pod's creation to its process holding its SVID (total),
	// split at the start of the process: before it, the API server, the
	// kubelet and containerd starting the container; after it, the
	// registrar, the server and the agent (the entry made and sent, the
	// process attested, its SVID signed).
	var total, toStart, toSVID []time.Duration
	for i := range pods {
		app := []string{"a", "b"}[i%2]
		name := app + "-" + strconv.Itoa(i)
		out := filepath.Join(outDir, name)
		pod := k.HostPod(ns, name, "workload", "spiffekit.test/svid:1", map[string]string{"app": app},
			map[string]string{sockDir: "/run/spiffe", outDir: "/out"},
			"-socket", "unix:///run/spiffe/api.sock", "-out", "/out/"+name)
		created := time.Now()
		_, err := c.Client.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		require.NoError(t, err)
		var got []byte
		progtest.WaitWithin(t, 2*time.Minute, "pod "+name+" to hold its SVID", func() bool {
			got, err = os.ReadFile(out)
			return err == nil
		}, agent, registrar)
		lines := strings.Fields(string(got))
		require.Len(t, lines, 3, "%s wrote %q", name, got)
		assert.Equal(t, "spiffe://example.org/"+app+"/"+name, lines[0], "the SVIDs of pod %s", name)
		started, err := strconv.ParseInt(lines[1], 10, 64)
		require.NoError(t, err)
		held, err := strconv.ParseInt(lines[2], 10, 64)
		require.NoError(t, err)
		total = append(total, time.Unix(0, held).Sub(created))
		toStart = append(toStart, time.Unix(0, started).Sub(created))
		toSVID = append(toSVID, time.Unix(0, held).Sub(time.Unix(0, started)))
		if d := total[len(total)-1]; d > 10*time.Second {
			t.Logf("pod %s: SVID held %s after its creation; its process started after %s, held its SVID %s later",
				name, d.Round(time.Millisecond), toStart[len(toStart)-1].Round(time.Millisecond), toSVID[len(toSVID)-1].Round(time.Millisecond))
		}
	}

	// A process on the host, in no pod, gets no SVID from these entries.
	fetch := exec.Command(e.AgentBin, "api", "fetch", "x509", "-socket", apiSock)
	outHost, err := fetch.CombinedOutput()
	assert.Error(t, err, "a process in no pod got %s", outHost)
	assert.NotContains(t, string(outHost), "spiffe://example.org/a/")
	assert.NotContains(t, string(outHost), "spiffe://example.org/b/")

	report := func(what string, d []time.Duration) {
		slices.Sort(d)
		// The nearest-rank percentile: the smallest time at least p of
		// the pods took.
		q := func(p float64) time.Duration {
			return d[max(0, int(math.Ceil(p*float64(len(d))))-1)].Round(time.Millisecond)
		}
		t.Logf("%s, %d pods one after the other: p50 %s, p90 %s, p99 %s (min %s, max %s)",
			what, len(d), q(0.50), q(0.90), q(0.99), d[0].Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
	}
	report("pod created -> SVID held", total)
	report("pod created -> its process started", toStart)
	report("process started -> SVID held", toSVID)
}
