package kubetest

import (
	"path/filepath"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The objects a test creates are left in place when it ends: the API
// server and its etcd are thrown away with the test binary, and without a
// controller-manager a deleted namespace would never go away anyway.

// Namespace creates a namespace named after the test, with a random
// suffix, and returns its name.
func (c *Cluster) Namespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	ns, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: safeName(t.Name()) + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: creating a namespace: %v", err)
	}
	return ns.Name
}

// ServiceAccount creates the service account name in namespace ns.
func (c *Cluster) ServiceAccount(t testing.TB, ns, name string) *corev1.ServiceAccount {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	sa, err := c.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: creating service account %s/%s: %v", ns, name, err)
	}
	return sa
}

// Node creates a node named after the test, with a random suffix, the
// labels and, if ip is not empty, that internal IP address in its status.
func (c *Cluster) Node(t testing.TB, labels map[string]string, ip string) *corev1.Node {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	node, err := c.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{GenerateName: safeName(t.Name()) + "-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: creating a node: %v", err)
	}
	if ip == "" {
		return node
	}
	node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: ip}}
	if node, err = c.Client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("kubetest: setting the address of node %s: %v", node.Name, err)
	}
	return node
}

// Pod creates a pod of service account sa in namespace ns, with the
// labels, scheduled on node (its node name set), and gives it the status
// a kubelet would: running, with the node's internal IP as host IP.
func (c *Cluster) Pod(t testing.TB, ns, sa string, node *corev1.Node, labels map[string]string) *corev1.Pod {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	pod, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-", Labels: labels},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeName:           node.Name,
			Containers:         []corev1.Container{{Name: "agent", Image: "spiffekit/agent:test"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: creating a pod in %s: %v", ns, err)
	}
	pod.Status.Phase = corev1.PodRunning
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			pod.Status.HostIP = a.Address
			pod.Status.HostIPs = []corev1.HostIP{{IP: a.Address}}
			break
		}
	}
	if pod, err = c.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("kubetest: setting the status of pod %s/%s: %v", ns, pod.Name, err)
	}
	return pod
}

// DeletePod deletes the pod at once (no grace period: there is no
// kubelet to confirm it stopped).
func (c *Cluster) DeletePod(t testing.TB, pod *corev1.Pod) {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	var zero int64
	if err := c.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("kubetest: deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

// Token returns a token of the pod's service account bound to the pod, for
// the audiences, valid for an hour: what the kubelet projects into the
// pod. The API server records the pod, and its node, in the token.
func (c *Cluster) Token(t testing.TB, pod *corev1.Pod, audiences ...string) string {
	t.Helper()
	return c.token(t, pod.Namespace, pod.Spec.ServiceAccountName, &authnv1.BoundObjectReference{
		Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID,
	}, audiences)
}

// UnboundToken returns a token of service account ns/sa bound to no
// object, for the audiences.
func (c *Cluster) UnboundToken(t testing.TB, ns, sa string, audiences ...string) string {
	t.Helper()
	return c.token(t, ns, sa, nil, audiences)
}

func (c *Cluster) token(t testing.TB, ns, sa string, bound *authnv1.BoundObjectReference, audiences []string) string {
	t.Helper()
	ctx, cancel := ctx(t)
	defer cancel()
	hour := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &hour, BoundObjectRef: bound},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: requesting a token of %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// Identity creates service account name in namespace ns, grants it rules
// across the cluster (a ClusterRole and its binding, named ns-name), and
// returns a kubeconfig file (in a temporary directory of t) that
// authenticates as it, with a token for the API server valid for an hour.
func (c *Cluster) Identity(t testing.TB, ns, name string, rules []rbacv1.PolicyRule) string {
	t.Helper()
	c.ServiceAccount(t, ns, name)
	ctx, cancel := ctx(t)
	defer cancel()
	role := ns + "-" + name
	rbac := c.Client.RbacV1()
	if _, err := rbac.ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: role}, Rules: rules,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: creating cluster role %s: %v", role, err)
	}
	if _, err := rbac.ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: binding cluster role %s: %v", role, err)
	}
	return c.Kubeconfig(t, c.UnboundToken(t, ns, name))
}

// Kubeconfig writes a kubeconfig file of the cluster authenticating with
// the bearer token, in a temporary directory of t, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.writeKubeconfig(path, token); err != nil {
		t.Fatalf("kubetest: writing a kubeconfig: %v", err)
	}
	return path
}
