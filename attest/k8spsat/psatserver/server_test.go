package psatserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

var td = spiffeid.RequireTrustDomainFromString("example.org")

// rules are what the server's identity needs in a cluster (see doc.go).
var rules = []rbacv1.PolicyRule{
	{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get"}},
}

// fixture is a namespace of the shared cluster with an agent service
// account, a node and an agent pod on it, and the server's identity.
type fixture struct {
	c          *kubetest.Cluster
	ns         string
	node       *corev1.Node
	pod        *corev1.Pod
	kubeconfig string // the server's identity
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	c := kubetest.Shared(t)
	f := &fixture{c: c, ns: c.Namespace(t)}
	c.ServiceAccount(t, f.ns, "agent")
	f.node = c.Node(t, map[string]string{"zone": "eu-1", "secret-ish": "x"}, "10.1.2.3")
	f.pod = c.Pod(t, f.ns, "agent", f.node, map[string]string{"app": "spiffekit-agent", "other": "y"})
	f.kubeconfig = c.Identity(t, f.ns, "spiffekit-server", rules)
	return f
}

// cluster returns the configuration of the fixture's cluster.
func (f *fixture) cluster(t *testing.T) ClusterConfig {
	t.Helper()
	rc, err := LoadRESTConfig(f.kubeconfig)
	require.NoError(t, err)
	return ClusterConfig{REST: rc, ServiceAccountAllowList: []string{f.ns + ":agent"}}
}

func payloadFor(cluster, token string) []byte {
	return k8spsat.Payload{Cluster: cluster, Token: token}.Marshal()
}

// attestOnce runs one attestation with a server of the given clusters.
func attestOnce(t *testing.T, clusters map[string]ClusterConfig, b []byte) (attest.NodeResult, error) {
	t.Helper()
	s, err := New(Config{Clusters: clusters})
	require.NoError(t, err)
	defer s.Close()
	return s.Attest(t.Context(), td, b, nil)
}

func TestAttest(t *testing.T) {
	f := newFixture(t) // before the check: the shared API server outlives the test
	defer leaktest.Check(t)()
	cfg := f.cluster(t)
	cfg.AllowedNodeLabelKeys = []string{"zone", "absent"}
	cfg.AllowedPodLabelKeys = []string{"app"}
	s, err := New(Config{Clusters: map[string]ClusterConfig{"prod": cfg}})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, "k8s_psat", s.Type())

	token := f.c.Token(t, f.pod, DefaultAudience)
	res, err := s.Attest(t.Context(), td, payloadFor("prod", token), nil)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spiffekit/agent/k8s_psat/prod/"+string(f.node.UID), res.AgentID.String())
	assert.True(t, res.CanReattest)
	want := []string{
		"k8s_psat:agent_node_ip:10.1.2.3",
		"k8s_psat:agent_node_label:zone:eu-1",
		"k8s_psat:agent_node_name:" + f.node.Name,
		"k8s_psat:agent_node_uid:" + string(f.node.UID),
		"k8s_psat:agent_ns:" + f.ns,
		"k8s_psat:agent_pod_label:app:spiffekit-agent",
		"k8s_psat:agent_pod_name:" + f.pod.Name,
		"k8s_psat:agent_pod_uid:" + string(f.pod.UID),
		"k8s_psat:agent_sa:agent",
		"k8s_psat:cluster:prod",
	}
	assert.Equal(t, want, selectorStrings(res.Selectors), "only the allowed label keys select")

	// Re-attestation: the same node, another pod of the agent (a restarted
	// DaemonSet pod), gets the same agent ID.
	pod2 := f.c.Pod(t, f.ns, "agent", f.node, nil)
	res2, err := s.Attest(t.Context(), td, payloadFor("prod", f.c.Token(t, pod2, DefaultAudience)), nil)
	require.NoError(t, err)
	assert.Equal(t, res.AgentID, res2.AgentID)
	assert.Contains(t, selectorStrings(res2.Selectors), "k8s_psat:agent_pod_name:"+pod2.Name)

	_, err = s.Attest(t.Context(), spiffeid.TrustDomain{}, payloadFor("prod", token), nil)
	require.ErrorContains(t, err, "no trust domain")
}

func selectorStrings(s attest.Selectors) []string {
	var out []string
	for _, sel := range s.Slice() {
		out = append(out, sel.String())
	}
	return out
}

// TestAttestRefused tries to break each rule of Attest with a real API
// server: each attempt must be refused with ErrNodeRejected.
func TestAttestRefused(t *testing.T) {
	f := newFixture(t) // before the check: the shared API server outlives the test
	defer leaktest.Check(t)()
	c := f.c
	clusters := map[string]ClusterConfig{"prod": f.cluster(t)}
	good := c.Token(t, f.pod, DefaultAudience)

	c.ServiceAccount(t, f.ns, "web")
	webPod := c.Pod(t, f.ns, "web", f.node, nil)

	goneNode := c.Node(t, nil, "")
	onGoneNode := c.Pod(t, f.ns, "agent", goneNode, nil)
	onGoneNodeToken := c.Token(t, onGoneNode, DefaultAudience)
	deleteNode(t, c, goneNode)

	unscheduled := createPod(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, GenerateName: "unscheduled-"},
		Spec:       corev1.PodSpec{ServiceAccountName: "agent", Containers: []corev1.Container{{Name: "a", Image: "a"}}},
	})

	for _, tt := range []struct {
		name, cluster, token, err string
	}{
		{"cluster not configured", "staging", good, `cluster "staging" is not configured`},
		{"wrong audience", "prod", c.Token(t, f.pod, "another-service"), "does not authenticate the token"},
		{"token signed by another issuer's key", "prod", forge(t, good), "does not authenticate the token"},
		{"tampered token", "prod", good[:len(good)-4] + "AAAA", "does not authenticate the token"},
		{"garbage", "prod", "not-a-token", "does not authenticate the token"},
		{"service account not allowed", "prod", c.Token(t, webPod, DefaultAudience), "service account " + f.ns + ":web is not allowed"},
		{"token bound to no pod", "prod", c.UnboundToken(t, f.ns, "agent", DefaultAudience), "not bound to a pod"},
		{"node deleted", "prod", onGoneNodeToken, "node " + goneNode.Name},
		{"pod on no node", "prod", c.Token(t, unscheduled, DefaultAudience), "not scheduled on a node"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := attestOnce(t, clusters, payloadFor(tt.cluster, tt.token))
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			assert.ErrorContains(t, err, tt.err)
			assert.NotContains(t, err.Error(), tt.token, "an error never holds the token")
		})
	}

	// A pod deleted, and one deleted and created again under the same name
	// (the token names the old UID), after their tokens were reviewed once:
	// the API server may go on authenticating them from its cache for a
	// few seconds, the attestor's own reading of the pod must not.
	t.Run("pod deleted", func(t *testing.T) {
		pod := c.Pod(t, f.ns, "agent", f.node, nil)
		token := c.Token(t, pod, DefaultAudience)
		_, err := attestOnce(t, clusters, payloadFor("prod", token))
		require.NoError(t, err)
		c.DeletePod(t, pod)
		_, err = attestOnce(t, clusters, payloadFor("prod", token))
		require.ErrorIs(t, err, attest.ErrNodeRejected)
		refusedByPod(t, err, "pod "+f.ns+"/"+pod.Name+" of the token no longer exists")
	})
	t.Run("pod replaced under the same name", func(t *testing.T) {
		pod := c.Pod(t, f.ns, "agent", f.node, nil)
		token := c.Token(t, pod, DefaultAudience)
		_, err := attestOnce(t, clusters, payloadFor("prod", token))
		require.NoError(t, err)
		c.DeletePod(t, pod)
		recreate(t, c, pod)
		_, err = attestOnce(t, clusters, payloadFor("prod", token))
		require.ErrorIs(t, err, attest.ErrNodeRejected)
		refusedByPod(t, err, "pod "+f.ns+"/"+pod.Name+" is not the token's")
	})

	t.Run("malformed payload", func(t *testing.T) {
		_, err := attestOnce(t, clusters, []byte(`{"cluster":"prod"}`))
		require.ErrorIs(t, err, attest.ErrNodeRejected)
	})
}

// refusedByPod checks that err is the attestor's refusal saying want,
// unless the API server refused the token first: it does once its cache of
// the token's earlier review has expired (seconds), which a loaded machine
// may take between two reviews.
func refusedByPod(t *testing.T, err error, want string) {
	t.Helper()
	if strings.Contains(err.Error(), "the API server does not authenticate the token") {
		t.Logf("refused by the API server, not by the attestor's reading of the pod: %v", err)
		return
	}
	assert.ErrorContains(t, err, want)
}

// recreate creates a pod of the same name, service account and node as
// pod, which has been deleted: a new UID.
func recreate(t *testing.T, c *kubetest.Cluster, pod *corev1.Pod) {
	t.Helper()
	again := createPod(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: pod.Name},
		Spec: corev1.PodSpec{ServiceAccountName: pod.Spec.ServiceAccountName, NodeName: pod.Spec.NodeName,
			Containers: []corev1.Container{{Name: "a", Image: "a"}}},
	})
	require.NotEqual(t, pod.UID, again.UID)
}

func createPod(t *testing.T, c *kubetest.Cluster, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	got, err := c.Client.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	require.NoError(t, err)
	return got
}

func deleteNode(t *testing.T, c *kubetest.Cluster, node *corev1.Node) {
	t.Helper()
	require.NoError(t, c.Client.CoreV1().Nodes().Delete(t.Context(), node.Name, metav1.DeleteOptions{}))
}

// forge returns token with its signature replaced by one of a key the
// cluster never had: what another cluster's issuer would sign.
func forge(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	require.NoError(t, err)
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// TestAttestUndecided: when the API server cannot be asked, or refuses
// the server's own credentials, the attestor says it could not decide
// (no ErrNodeRejected): the node is not at fault.
func TestAttestUndecided(t *testing.T) {
	f := newFixture(t) // before the check: the shared API server outlives the test
	defer leaktest.Check(t)()
	token := f.c.Token(t, f.pod, DefaultAudience)

	t.Run("no permission to review tokens", func(t *testing.T) {
		cfg := f.cluster(t)
		cfg.REST, _ = LoadRESTConfig(f.c.Identity(t, f.ns, "powerless", nil))
		_, err := attestOnce(t, map[string]ClusterConfig{"prod": cfg}, payloadFor("prod", token))
		require.ErrorContains(t, err, "reviewing the token")
		assert.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
	t.Run("no permission to read pods", func(t *testing.T) {
		cfg := f.cluster(t)
		cfg.REST, _ = LoadRESTConfig(f.c.Identity(t, f.ns, "reviewer", rules[:1]))
		_, err := attestOnce(t, map[string]ClusterConfig{"prod": cfg}, payloadFor("prod", token))
		require.ErrorContains(t, err, "reading pod")
		assert.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
	t.Run("no permission to read nodes", func(t *testing.T) {
		cfg := f.cluster(t)
		podsOnly := []rbacv1.PolicyRule{rules[0], {APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}}
		cfg.REST, _ = LoadRESTConfig(f.c.Identity(t, f.ns, "podreader", podsOnly))
		_, err := attestOnce(t, map[string]ClusterConfig{"prod": cfg}, payloadFor("prod", token))
		require.ErrorContains(t, err, "reading node")
		assert.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
	t.Run("API server unreachable", func(t *testing.T) {
		cfg := f.cluster(t)
		cfg.REST.Host = "https://127.0.0.1:1"
		_, err := attestOnce(t, map[string]ClusterConfig{"prod": cfg}, payloadFor("prod", token))
		require.ErrorContains(t, err, "reviewing the token")
		assert.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
}

// TestClusters adds, changes and removes clusters while nodes attest.
func TestClusters(t *testing.T) {
	f := newFixture(t) // before the check: the shared API server outlives the test
	defer leaktest.Check(t)()
	token := f.c.Token(t, f.pod, DefaultAudience)
	s, err := New(Config{})
	require.NoError(t, err)
	defer s.Close()
	assert.Empty(t, s.Clusters())
	_, err = s.Attest(t.Context(), td, payloadFor("a", token), nil)
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	require.NoError(t, s.SetCluster("a", f.cluster(t)))
	res, err := s.Attest(t.Context(), td, payloadFor("a", token), nil)
	require.NoError(t, err)
	assert.Contains(t, res.AgentID.String(), "/k8s_psat/a/")

	// The same API server under a second name, with an allow-list that
	// lacks the agent's service account.
	other := f.cluster(t)
	other.ServiceAccountAllowList = []string{"kube-system:other"}
	require.NoError(t, s.SetCluster("b", other))
	assert.Equal(t, []string{"a", "b"}, s.Clusters())
	_, err = s.Attest(t.Context(), td, payloadFor("b", token), nil)
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	// Replacing b's configuration lets the agent in.
	require.NoError(t, s.SetCluster("b", f.cluster(t)))
	_, err = s.Attest(t.Context(), td, payloadFor("b", token), nil)
	require.NoError(t, err)

	// An invalid change is refused and changes nothing.
	require.Error(t, s.SetCluster("c", ClusterConfig{}))
	require.Error(t, s.SetClusters(map[string]ClusterConfig{"a": f.cluster(t), "bad/name": f.cluster(t)}))
	assert.Equal(t, []string{"a", "b"}, s.Clusters())

	assert.True(t, s.RemoveCluster("a"))
	assert.False(t, s.RemoveCluster("a"))
	_, err = s.Attest(t.Context(), td, payloadFor("a", token), nil)
	require.ErrorContains(t, err, `cluster "a" is not configured`)

	require.NoError(t, s.SetClusters(map[string]ClusterConfig{"c": f.cluster(t)}))
	assert.Equal(t, []string{"c"}, s.Clusters())
	_, err = s.Attest(t.Context(), td, payloadFor("b", token), nil)
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	// Changes while nodes attest: every attestation either succeeds or is
	// refused for an unknown cluster, never anything else (run with -race).
	// The worker stops between attestations, not in one: a request cut short
	// leaves its connection busy for a moment after the call returns.
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	wg.Go(func() {
		for !stop.Load() {
			_, err := s.Attest(t.Context(), td, payloadFor("c", token), nil)
			if err != nil && !strings.Contains(err.Error(), "is not configured") {
				errs <- err
				return
			}
		}
	})
	for range 20 {
		require.True(t, s.RemoveCluster("c"))
		require.NoError(t, s.SetCluster("c", f.cluster(t)))
	}
	stop.Store(true)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatalf("attestation during changes: %v", err)
	default:
	}
}

// blockingReviews holds every TokenReview request until release is closed,
// and says on started when one arrives.
type blockingReviews struct {
	next    http.RoundTripper
	started chan<- struct{}
	release <-chan struct{}
}

// WrappedRoundTripper lets client-go reach the transport underneath, to
// close its idle connections.
func (b blockingReviews) WrappedRoundTripper() http.RoundTripper { return b.next }

func (b blockingReviews) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/tokenreviews") {
		b.started <- struct{}{}
		select {
		case <-b.release:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return b.next.RoundTrip(r)
}

// TestRemoveDuringAttestation removes a cluster while one of its
// attestations waits on the API server: the attestation finishes with the
// cluster it started with, and the connection it used is closed when it
// ends, although the server no longer holds that cluster (the leak check
// fails otherwise).
func TestRemoveDuringAttestation(t *testing.T) {
	f := newFixture(t)
	defer leaktest.Check(t)()
	token := f.c.Token(t, f.pod, DefaultAudience)
	started, release := make(chan struct{}, 1), make(chan struct{})
	slow := f.cluster(t)
	slow.REST.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return blockingReviews{next: rt, started: started, release: release}
	}
	s, err := New(Config{Clusters: map[string]ClusterConfig{"slow": slow}})
	require.NoError(t, err)

	type result struct {
		res attest.NodeResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := s.Attest(t.Context(), td, payloadFor("slow", token), nil)
		done <- result{res, err}
	}()
	<-started
	require.True(t, s.RemoveCluster("slow"))
	close(release)
	r := <-done
	require.NoError(t, r.err)
	assert.Contains(t, r.res.AgentID.String(), "/k8s_psat/slow/")

	_, err = s.Attest(t.Context(), td, payloadFor("slow", token), nil)
	require.ErrorContains(t, err, `cluster "slow" is not configured`)
	// No Close: the server holds no cluster, so only the removed cluster's
	// last attestation can have closed the connection.
}

func TestClusterConfig(t *testing.T) {
	rc := &rest.Config{Host: "https://127.0.0.1:6443"}
	ok := ClusterConfig{REST: rc, ServiceAccountAllowList: []string{"ns:sa"}}
	many := make([]string, maxListItems+1)
	for i := range many {
		many[i] = "ns:sa"
	}
	for _, tt := range []struct {
		name    string
		cluster string
		mod     func(*ClusterConfig)
		err     string
	}{
		{"bad name", "a:b", func(*ClusterConfig) {}, "only letters"},
		{"no REST", "c", func(c *ClusterConfig) { c.REST = nil }, "no API server configuration"},
		{"empty allow-list", "c", func(c *ClusterConfig) { c.ServiceAccountAllowList = nil }, "allow-list is empty"},
		{"allow-list item without namespace", "c", func(c *ClusterConfig) { c.ServiceAccountAllowList = []string{"sa"} }, "<namespace>:<name>"},
		{"allow-list item with three parts", "c", func(c *ClusterConfig) { c.ServiceAccountAllowList = []string{"a:b:c"} }, "<namespace>:<name>"},
		{"empty audience", "c", func(c *ClusterConfig) { c.Audience = []string{""} }, "audience list has an empty item"},
		{"empty label key", "c", func(c *ClusterConfig) { c.AllowedPodLabelKeys = []string{"app", ""} }, "pod label keys has an empty item"},
		{"too many", "c", func(c *ClusterConfig) { c.ServiceAccountAllowList = many }, "more than 1024"},
		{"bad REST", "c", func(c *ClusterConfig) {
			c.REST = &rest.Config{Host: "https://x", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("not PEM")}}
		}, "API client"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			_, err := New(Config{Clusters: map[string]ClusterConfig{tt.cluster: c}})
			require.ErrorContains(t, err, tt.err)
			assert.True(t, strings.HasPrefix(err.Error(), "psatserver: "), err)
		})
	}

	cl, err := newCluster("c", ok)
	require.NoError(t, err)
	assert.Equal(t, []string{DefaultAudience}, cl.audiences)
	assert.Zero(t, rc.QPS, "the caller's configuration is copied, not changed")
}

func TestLoadRESTConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600))
	rc, err := LoadRESTConfig(good)
	require.NoError(t, err)
	assert.Equal(t, "https://10.0.0.1:6443", rc.Host)

	_, err = LoadRESTConfig(filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "psatserver: kubeconfig")

	noServer := filepath.Join(dir, "noserver")
	require.NoError(t, os.WriteFile(noServer, []byte("apiVersion: v1\nkind: Config\n"), 0o600))
	_, err = LoadRESTConfig(noServer)
	require.Error(t, err)

	// Outside a pod there is no in-cluster configuration.
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err = LoadRESTConfig("")
	require.ErrorContains(t, err, "in-cluster")
}

func TestRejectError(t *testing.T) {
	cause := errors.New("cause")
	err := reject(cause, "x %d", 1)
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	require.ErrorIs(t, err, cause)
	assert.Equal(t, "psatserver: x 1", err.Error())
}

func TestParseServiceAccount(t *testing.T) {
	for _, tt := range []struct {
		in       string
		ns, name string
		err      string
	}{
		{in: "system:serviceaccount:spire:agent", ns: "spire", name: "agent"},
		{in: "system:serviceaccounts:spire:agent", err: "not a service account"},
		{in: "admin", err: "not a service account"},
		{in: "system:serviceaccount:spire", err: "malformed"},
		{in: "system:serviceaccount::agent", err: "malformed"},
		{in: "system:serviceaccount:spire:", err: "malformed"},
		{in: "system:serviceaccount:spire:agent:x", err: "malformed"},
	} {
		t.Run(tt.in, func(t *testing.T) {
			ns, name, err := parseServiceAccount(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, [2]string{tt.ns, tt.name}, [2]string{ns, name})
		})
	}
}
