package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestMain(m *testing.M) { Main(m) }

// TestShared checks the shared API server: one per test binary, of the
// release scripts/kube-binaries built, reachable through the admin
// kubeconfig, with RBAC on.
func TestShared(t *testing.T) {
	c := Shared(t)
	assert.Same(t, c, Shared(t), "one API server per test binary")
	assert.True(t, strings.HasPrefix(c.URL, "https://127.0.0.1:"), c.URL)

	v, err := c.Client.Discovery().ServerVersion()
	require.NoError(t, err)
	assert.Equal(t, "1", v.Major)
	assert.Equal(t, "34", v.Minor)
	assert.True(t, strings.HasPrefix(v.GitVersion, "v1.34."), v.GitVersion)

	rc, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	require.NoError(t, err)
	admin, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	_, err = admin.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{})
	require.NoError(t, err, "the admin kubeconfig works")

	// Without a token nothing is allowed (no anonymous access).
	anon, err := kubernetes.NewForConfig(c.RESTConfig(""))
	require.NoError(t, err)
	_, err = anon.CoreV1().Namespaces().List(t.Context(), metav1.ListOptions{})
	require.Error(t, err)
	assert.NotEmpty(t, c.Log())
}

// TestObjects creates every kind of object a test needs and checks that
// the API server treats them as a kubelet's would be: a pod-bound token
// passes TokenReview with the pod's and node's names and UIDs.
func TestObjects(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	assert.True(t, strings.HasPrefix(ns, "testobjects-"), ns)
	sa := c.ServiceAccount(t, ns, "agent")
	assert.Equal(t, "agent", sa.Name)

	bare := c.Node(t, nil, "")
	assert.Empty(t, bare.Status.Addresses)
	node := c.Node(t, map[string]string{"zone": "a"}, "10.0.0.7")
	assert.Equal(t, "a", node.Labels["zone"])
	pod := c.Pod(t, ns, "agent", node, map[string]string{"app": "x"})
	assert.Equal(t, node.Name, pod.Spec.NodeName)
	assert.Equal(t, "10.0.0.7", pod.Status.HostIP)
	noIP := c.Pod(t, ns, "agent", bare, nil)
	assert.Empty(t, noIP.Status.HostIP)

	review := func(token string, aud ...string) authnv1.TokenReviewStatus {
		t.Helper()
		tr, err := c.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: aud},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return tr.Status
	}
	st := review(c.Token(t, pod, "aud-1"), "aud-1")
	require.True(t, st.Authenticated, st.Error)
	assert.Equal(t, "system:serviceaccount:"+ns+":agent", st.User.Username)
	assert.Equal(t, authnv1.ExtraValue{pod.Name}, st.User.Extra["authentication.kubernetes.io/pod-name"])
	assert.Equal(t, authnv1.ExtraValue{string(pod.UID)}, st.User.Extra["authentication.kubernetes.io/pod-uid"])
	assert.Equal(t, authnv1.ExtraValue{node.Name}, st.User.Extra["authentication.kubernetes.io/node-name"])
	assert.Equal(t, authnv1.ExtraValue{string(node.UID)}, st.User.Extra["authentication.kubernetes.io/node-uid"])
	assert.False(t, review(c.Token(t, pod, "aud-1"), "aud-2").Authenticated, "audience checked")

	unbound := review(c.UnboundToken(t, ns, "agent", "aud-1"), "aud-1")
	require.True(t, unbound.Authenticated)
	assert.NotContains(t, unbound.User.Extra, "authentication.kubernetes.io/pod-name")

	c.DeletePod(t, pod)
	_, err := c.Client.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	require.Error(t, err, "deleted at once")

	// An identity may do what it was granted, nothing more.
	kc := c.Identity(t, ns, "reviewer", []rbacv1.PolicyRule{
		{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
	})
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	require.NoError(t, err)
	reviewer, err := kubernetes.NewForConfig(rc)
	require.NoError(t, err)
	ssr, err := reviewer.AuthorizationV1().SelfSubjectRulesReviews().Create(t.Context(), &authzv1.SelfSubjectRulesReview{
		Spec: authzv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	found := false
	for _, r := range ssr.Status.ResourceRules {
		if fmt.Sprint(r.Resources) == "[tokenreviews]" {
			found = true
		}
	}
	assert.True(t, found, "granted tokenreviews: %+v", ssr.Status.ResourceRules)
	_, err = reviewer.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	require.Error(t, err, "not granted pods")
}

// TestStart starts a second cluster: its own issuer and key, so that the
// shared cluster does not authenticate its tokens.
func TestStart(t *testing.T) {
	shared := Shared(t)
	other := Start(t)
	assert.NotEqual(t, shared.URL, other.URL)
	assert.NotEqual(t, shared.Issuer, other.Issuer)
	ns := other.Namespace(t)
	other.ServiceAccount(t, ns, "agent")
	token := other.UnboundToken(t, ns, "agent", "aud")
	for _, tt := range []struct {
		c    *Cluster
		want bool
	}{{other, true}, {shared, false}} {
		tr, err := tt.c.Client.AuthenticationV1().TokenReviews().Create(t.Context(), &authnv1.TokenReview{
			Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{"aud"}},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		assert.Equal(t, tt.want, tr.Status.Authenticated, "%s: %s", tt.c.Name, tr.Status.Error)
	}
}

// recorder is a testing.TB that records a skip or a failure and stops
// the function it runs, as the real ones would.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

type stopped struct{}

func (r *recorder) Helper() {}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
	panic(stopped{})
}

func (r *recorder) run(f func(testing.TB)) {
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(stopped); !ok {
				panic(v)
			}
		}
	}()
	f(r)
}

// TestMissingBinaries: without the binaries a test skips saying how to get
// them, except where kube is required ($SPIFFEKIT_TEST_REQUIRE), where it fails.
func TestMissingBinaries(t *testing.T) {
	// A directory with something called kube-apiserver, to get past that
	// check to etcd's.
	fake := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(fake, "kube-apiserver"), nil, 0o755))
	for _, tt := range []struct {
		name, bin, path, require string
		skipped, failed          bool
		msg                      string
	}{
		{"no variable", "", os.Getenv("PATH"), "", true, false, "scripts/kube-binaries"},
		{"no variable, kube required", "", os.Getenv("PATH"), "docker,kube", false, true, "kube is required"},
		{"no kube-apiserver", t.TempDir(), os.Getenv("PATH"), "", true, false, "no kube-apiserver"},
		{"no etcd", fake, t.TempDir(), "", true, false, "no etcd on PATH"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBin, tt.bin)
			t.Setenv("PATH", tt.path)
			t.Setenv(EnvRequire, tt.require)
			r := &recorder{TB: t}
			r.run(func(tb testing.TB) { Shared(tb) })
			assert.Equal(t, tt.skipped, r.skipped)
			assert.Equal(t, tt.failed, r.failed)
			assert.Contains(t, r.msg, tt.msg)
			r = &recorder{TB: t}
			r.run(func(tb testing.TB) { Start(tb) })
			assert.True(t, r.skipped || r.failed)
		})
	}
}

// TestStartFailures: a program that exits, or never gets ready, is
// reported with its log.
func TestStartFailures(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "fails")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho cannot start >&2\nexit 3\n"), 0o755))
	_, err := startAPIServer(script, "broken", filepath.Join(dir, "broken"), "http://127.0.0.1:1")
	require.ErrorContains(t, err, "kube-apiserver exited")
	assert.ErrorContains(t, err, "cannot start")

	_, _, err = startEtcd(script, filepath.Join(dir, "etcd"))
	require.ErrorContains(t, err, "etcd exited")

	_, err = startProcess("x", filepath.Join(dir, "x"), filepath.Join(dir, "missing"))
	require.ErrorContains(t, err, "starting x")

	p, err := startProcess("sleeper", filepath.Join(dir, "s"), "sleep", "60")
	require.NoError(t, err)
	p.stop()
	p.stop() // stopping a stopped process is fine
}

func TestSafeName(t *testing.T) {
	assert.Equal(t, "testx-sub-case", safeName("TestX/sub_case"))
	assert.Equal(t, "test", safeName("///"))
	assert.LessOrEqual(t, len(safeName(strings.Repeat("a", 100))), 40)
}

// TestStop stops the shared API server and etcd, as a TestMain that runs
// another package's Main does; the next Shared starts new ones.
func TestStop(t *testing.T) {
	old := Shared(t)
	Stop()
	_, err := old.Client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{})
	require.Error(t, err, "the stopped API server answers no more")
	Stop() // nothing left to stop
	c := Shared(t)
	assert.NotSame(t, old, c)
	_, err = c.Client.CoreV1().Namespaces().Get(t.Context(), "default", metav1.GetOptions{})
	require.NoError(t, err)
}
