package psatserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The keys of the extra information the API server gives a token bound to
// a pod, in its TokenReview status.
const (
	extraPodName  = "authentication.kubernetes.io/pod-name"
	extraPodUID   = "authentication.kubernetes.io/pod-uid"
	extraNodeName = "authentication.kubernetes.io/node-name"
	extraNodeUID  = "authentication.kubernetes.io/node-uid"
)

// Config configures [New].
type Config struct {
	// Clusters are the clusters whose nodes may attest, by name: the name
	// agents give, part of their agent ID and of their selectors. It may be
	// empty, and changed later ([Server.SetClusters]).
	Clusters map[string]ClusterConfig
}

// Server is the server side of k8s_psat attestation. It implements
// [attest.NodeAttestor] and is safe for concurrent use, including changes
// to its clusters while nodes attest.
type Server struct {
	mu       sync.Mutex                          // serialises writers of clusters
	clusters atomic.Pointer[map[string]*cluster] // read without the lock; swapped whole
}

var _ attest.NodeAttestor = (*Server)(nil)

// New returns a server admitting the nodes of c.Clusters. It fails if a
// cluster's name or configuration is invalid (see [ClusterConfig]). It
// makes no request to any API server.
func New(c Config) (*Server, error) {
	s := &Server{}
	if err := s.SetClusters(c.Clusters); err != nil {
		return nil, err
	}
	return s, nil
}

// SetClusters replaces the server's clusters with clusters, all or
// nothing: if one is invalid it returns an error and keeps the clusters it
// had. Attestations under way finish with the cluster they started with;
// later ones see the new set. Every cluster's client is built anew, so a
// changed kubeconfig takes effect.
func (s *Server) SetClusters(clusters map[string]ClusterConfig) error {
	next := make(map[string]*cluster, len(clusters))
	for _, name := range slices.Sorted(maps.Keys(clusters)) {
		cl, err := newCluster(name, clusters[name])
		if err != nil {
			return fmt.Errorf("psatserver: %w", err)
		}
		next[name] = cl
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.clusters.Swap(&next); prev != nil {
		for _, cl := range *prev {
			cl.retire()
		}
	}
	return nil
}

// SetCluster adds the cluster name, or replaces its configuration, and
// keeps the others. It fails, changing nothing, if c or name is invalid.
func (s *Server) SetCluster(name string, c ClusterConfig) error {
	cl, err := newCluster(name, c)
	if err != nil {
		return fmt.Errorf("psatserver: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(*s.clusters.Load())
	prev := next[name]
	next[name] = cl
	s.clusters.Store(&next)
	if prev != nil {
		prev.retire()
	}
	return nil
}

// RemoveCluster removes the cluster name, so that its nodes can no longer
// attest (agents already attested keep their SVIDs until they expire or
// are evicted). It reports whether the cluster was there.
func (s *Server) RemoveCluster(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.clusters.Load()
	if _, ok := cur[name]; !ok {
		return false
	}
	next := maps.Clone(cur)
	delete(next, name)
	s.clusters.Store(&next)
	cur[name].retire()
	return true
}

// Close closes the idle connections of the clusters' API clients, so that
// none outlives the server; the server stays usable (a later attestation
// connects again). Connections of a cluster that was replaced or removed
// are closed when its last attestation ends. A connection still carrying a
// request is left to finish. It always returns nil.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.clusters.Load(); m != nil {
		for _, cl := range *m {
			cl.closeIdle()
		}
	}
	return nil
}

// Clusters returns the names of the server's clusters, sorted.
func (s *Server) Clusters() []string {
	return slices.Sorted(maps.Keys(*s.clusters.Load()))
}

// Type returns "k8s_psat" ([k8spsat.Type]).
func (s *Server) Type() string { return k8spsat.Type }

// Attest admits the node whose payload carries a projected service account
// token of an allowed service account, bound to a pod that still exists,
// of the cluster the payload names. It never uses challenge.
//
// It asks the cluster's API server to review the token (TokenReview, with
// the cluster's audiences), then reads the pod the token is bound to and
// the pod's node. The token must be valid for one of the audiences, bound
// to a pod (the API server records the pod in the token), and of a service
// account on the allow-list; the pod must still exist with the token's pod
// UID, run under the token's service account and be scheduled on a node;
// the node must exist, with the token's node UID if the token names one.
//
// The agent ID is spiffe://<td>/spiffekit/agent/k8s_psat/<cluster>/<node
// UID>: one agent per node, whichever pod runs it. The agent can re-attest.
// The selectors, all of type "k8s_psat", are SPIRE's:
//
//	cluster:<cluster name>
//	agent_ns:<namespace of the pod>
//	agent_sa:<service account of the pod>
//	agent_pod_name:<pod name>
//	agent_pod_uid:<pod UID>
//	agent_pod_label:<key>:<value>    for each allowed pod label key the pod has
//	agent_node_name:<node name>
//	agent_node_uid:<node UID>
//	agent_node_label:<key>:<value>   for each allowed node label key the node has
//	agent_node_ip:<IP>               the pod's host IPs, when the kubelet has set them
//
// Errors wrapping [attest.ErrNodeRejected]: the payload is malformed; the
// cluster is not configured; the API server does not authenticate the
// token (invalid, expired, signed by another cluster's issuer, for another
// audience, or bound to an object that no longer exists); the token is not
// bound to a pod, or its service account is not allowed; the pod or node
// is gone or does not match the token. An API server that cannot be
// reached, or refuses the server's own credentials, gives an error without
// ErrNodeRejected: the attestor could not decide. No error holds the token.
func (s *Server) Attest(ctx context.Context, td spiffeid.TrustDomain, b []byte, _ attest.Challenger) (attest.NodeResult, error) {
	if td.IsZero() {
		return attest.NodeResult{}, errors.New("psatserver: no trust domain")
	}
	p, err := k8spsat.ParsePayload(b)
	if err != nil {
		return attest.NodeResult{}, attest.RejectNode(err, "%s", err)
	}
	cl, ok := (*s.clusters.Load())[p.Cluster]
	if !ok {
		return attest.NodeResult{}, reject(nil, "cluster %q is not configured", p.Cluster)
	}
	cl.begin()
	defer cl.end()
	return cl.attest(ctx, td, p.Token)
}

// attest is Attest for a token of cluster cl.
func (cl *cluster) attest(ctx context.Context, td spiffeid.TrustDomain, token string) (attest.NodeResult, error) {
	review, err := cl.authn.TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: cl.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return attest.NodeResult{}, fmt.Errorf("psatserver: cluster %q: reviewing the token: %w", cl.name, err)
	}
	st := review.Status
	if !st.Authenticated {
		why := st.Error
		if why == "" {
			why = "no reason given"
		}
		return attest.NodeResult{}, reject(nil, "cluster %q: the API server does not authenticate the token: %s", cl.name, why)
	}
	if !slices.ContainsFunc(st.Audiences, func(a string) bool { return slices.Contains(cl.audiences, a) }) {
		return attest.NodeResult{}, reject(nil, "cluster %q: the token is for none of the audiences %q", cl.name, cl.audiences)
	}
	ns, sa, err := parseServiceAccount(st.User.Username)
	if err != nil {
		return attest.NodeResult{}, reject(err, "cluster %q: %v", cl.name, err)
	}
	if !cl.serviceAccounts[ns+":"+sa] {
		return attest.NodeResult{}, reject(nil, "cluster %q: service account %s:%s is not allowed", cl.name, ns, sa)
	}
	podName, err1 := extra(st.User, extraPodName, true)
	podUID, err2 := extra(st.User, extraPodUID, true)
	tokenNode, err3 := extra(st.User, extraNodeName, false)
	tokenNodeUID, err4 := extra(st.User, extraNodeUID, false)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return attest.NodeResult{}, reject(err, "cluster %q: token of %s:%s: %v", cl.name, ns, sa, err)
	}

	pod, err := cl.core.Pods(ns).Get(ctx, podName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		// The API server may still authenticate a token of a deleted pod
		// for a few seconds (it caches reviews): the pod decides.
		return attest.NodeResult{}, reject(err, "cluster %q: pod %s/%s of the token no longer exists", cl.name, ns, podName)
	case err != nil:
		return attest.NodeResult{}, fmt.Errorf("psatserver: cluster %q: reading pod %s/%s: %w", cl.name, ns, podName, err)
	case string(pod.UID) != podUID:
		return attest.NodeResult{}, reject(nil, "cluster %q: pod %s/%s is not the token's: its UID is %s, the token's %s",
			cl.name, ns, podName, pod.UID, podUID)
	case pod.Spec.ServiceAccountName != sa:
		return attest.NodeResult{}, reject(nil, "cluster %q: pod %s/%s runs as service account %q, not the token's %q",
			cl.name, ns, podName, pod.Spec.ServiceAccountName, sa)
	case pod.Spec.NodeName == "":
		return attest.NodeResult{}, reject(nil, "cluster %q: pod %s/%s is not scheduled on a node", cl.name, ns, podName)
	case tokenNode != "" && tokenNode != pod.Spec.NodeName:
		return attest.NodeResult{}, reject(nil, "cluster %q: pod %s/%s runs on node %s, the token names node %s",
			cl.name, ns, podName, pod.Spec.NodeName, tokenNode)
	}
	node, err := cl.core.Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return attest.NodeResult{}, reject(err, "cluster %q: node %s of pod %s/%s does not exist", cl.name, pod.Spec.NodeName, ns, podName)
	case err != nil:
		return attest.NodeResult{}, fmt.Errorf("psatserver: cluster %q: reading node %s: %w", cl.name, pod.Spec.NodeName, err)
	case node.UID == "":
		return attest.NodeResult{}, reject(nil, "cluster %q: node %s has no UID", cl.name, node.Name)
	case tokenNodeUID != "" && tokenNodeUID != string(node.UID):
		return attest.NodeResult{}, reject(nil, "cluster %q: node %s is not the token's: its UID is %s, the token's %s",
			cl.name, node.Name, node.UID, tokenNodeUID)
	}

	agentID, err := spiffeid.FromSegments(td, "spiffekit", "agent", k8spsat.Type, cl.name, string(node.UID))
	if err != nil {
		return attest.NodeResult{}, reject(err, "cluster %q: node %s: agent ID: %v", cl.name, node.Name, err)
	}
	return attest.NodeResult{
		AgentID:     agentID,
		Selectors:   cl.selectors(pod, node),
		CanReattest: true,
	}, nil
}

// selectors returns the node's selectors.
func (cl *cluster) selectors(pod *corev1.Pod, node *corev1.Node) attest.Selectors {
	var sels []attest.Selector
	add := func(parts ...string) {
		value := parts[0]
		for _, p := range parts[1:] {
			value += ":" + p
		}
		sel := attest.Selector{Type: k8spsat.Type, Value: value}
		// A value a selector cannot hold is left out; leaving a selector
		// out only ever makes fewer registration entries match.
		if sel.Validate() == nil {
			sels = append(sels, sel)
		}
	}
	add("cluster", cl.name)
	add("agent_ns", pod.Namespace)
	add("agent_sa", pod.Spec.ServiceAccountName)
	add("agent_pod_name", pod.Name)
	add("agent_pod_uid", string(pod.UID))
	add("agent_node_name", node.Name)
	add("agent_node_uid", string(node.UID))
	for k, v := range pod.Labels {
		if cl.podLabels[k] {
			add("agent_pod_label", k, v)
		}
	}
	for k, v := range node.Labels {
		if cl.nodeLabels[k] {
			add("agent_node_label", k, v)
		}
	}
	if pod.Status.HostIP != "" {
		add("agent_node_ip", pod.Status.HostIP)
	}
	for _, ip := range pod.Status.HostIPs {
		if ip.IP != "" {
			add("agent_node_ip", ip.IP)
		}
	}
	return attest.NewSelectors(sels...)
}

// extra returns the one value of the token's extra information key, or ""
// if the key is absent and not required.
func extra(u authnv1.UserInfo, key string, required bool) (string, error) {
	v := u.Extra[key]
	switch {
	case len(v) == 0 && !required:
		return "", nil
	case len(v) == 0:
		return "", fmt.Errorf("the token is not bound to a pod (no %s)", key)
	case len(v) > 1:
		return "", fmt.Errorf("the token has %d values for %s", len(v), key)
	case v[0] == "":
		return "", fmt.Errorf("the token has an empty %s", key)
	}
	return v[0], nil
}

// reject returns an error wrapping attest.ErrNodeRejected and cause, which
// may be nil.
func reject(cause error, format string, args ...any) error {
	return attest.RejectNode(cause, "psatserver: "+format, args...)
}
