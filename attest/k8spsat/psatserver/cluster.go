package psatserver

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	coreclient "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiffekit/spiffekit/attest/k8spsat"
)

// DefaultAudience is the audience a cluster's tokens must be for when
// [ClusterConfig].Audience is empty. SPIRE's default is "spire-server":
// a cluster whose agents' projected tokens keep that audience names it.
const DefaultAudience = "spiffekit-server"

// Client-side rate limits of the API server connection of a cluster whose
// REST configuration sets none (client-go's own defaults, 5 and 10, would
// let a cluster admit under two nodes a second). Each attestation makes
// three requests.
const (
	defaultQPS   = 30
	defaultBurst = 60
)

// maxListItems bounds the lists of a ClusterConfig: they are configuration,
// and each attestation walks them.
const maxListItems = 1024

// ClusterConfig describes one Kubernetes cluster whose nodes may attest.
// The API server identity it uses needs to create tokenreviews
// (authentication.k8s.io) and to get pods and nodes.
type ClusterConfig struct {
	// REST is how the server reaches the cluster's API server, as client-go
	// describes it: from a kubeconfig file or the in-cluster service
	// account ([LoadRESTConfig]). Required. It is copied; a QPS and Burst
	// of zero become 30 and 60 requests a second.
	REST *rest.Config

	// ServiceAccountAllowList names the service accounts, "<namespace>:
	// <name>", whose pods' tokens admit a node: the agents' service
	// account. Required, at most 1,024.
	ServiceAccountAllowList []string

	// Audience lists the audiences of which a token must carry at least
	// one. Empty means [DefaultAudience].
	Audience []string

	// AllowedNodeLabelKeys are the node label keys that become
	// agent_node_label selectors. Empty means none: a label is set by
	// whoever may edit the node, so only keys named here select.
	AllowedNodeLabelKeys []string

	// AllowedPodLabelKeys are the pod label keys that become
	// agent_pod_label selectors. Empty means none.
	AllowedPodLabelKeys []string
}

// cluster is a checked ClusterConfig with its API clients. Its
// configuration is immutable once built; mu guards only the count of
// attestations under way and whether the server has let it go.
type cluster struct {
	name            string
	serviceAccounts map[string]bool // "<namespace>:<name>"
	audiences       []string
	nodeLabels      map[string]bool
	podLabels       map[string]bool
	authn           authnclient.AuthenticationV1Interface
	core            coreclient.CoreV1Interface
	http            *http.Client // both clients'

	mu      sync.Mutex
	active  int  // attestations under way with this cluster
	retired bool // replaced or removed: no new attestation starts with it
}

// begin records an attestation starting with cl; end must follow.
func (cl *cluster) begin() {
	cl.mu.Lock()
	cl.active++
	cl.mu.Unlock()
}

// end records the end of an attestation begun with cl. The last one to end
// on a retired cluster closes its idle connections, which it left behind.
func (cl *cluster) end() {
	cl.mu.Lock()
	cl.active--
	last := cl.retired && cl.active == 0
	cl.mu.Unlock()
	if last {
		cl.closeIdle()
	}
}

// retire marks cl as let go by the server and closes its idle connections
// now if no attestation is under way with it, or when the last one ends.
func (cl *cluster) retire() {
	cl.mu.Lock()
	cl.retired = true
	idle := cl.active == 0
	cl.mu.Unlock()
	if idle {
		cl.closeIdle()
	}
}

// closeIdle closes the idle connections of the cluster's client. client-go
// shares transports between clients of equal TLS settings, so this may
// close another client's idle connections too: they are made again when
// needed.
func (cl *cluster) closeIdle() {
	utilnet.CloseIdleConnectionsFor(cl.http.Transport)
}

// newCluster checks c and builds the clients of cluster name. Building a
// client makes no request.
func newCluster(name string, c ClusterConfig) (*cluster, error) {
	if err := k8spsat.ValidateClusterName(name); err != nil {
		return nil, err
	}
	if c.REST == nil {
		return nil, fmt.Errorf("cluster %q: no API server configuration", name)
	}
	if len(c.ServiceAccountAllowList) == 0 {
		return nil, fmt.Errorf("cluster %q: the service account allow-list is empty", name)
	}
	for _, l := range []struct {
		what  string
		items []string
	}{
		{"service account allow-list", c.ServiceAccountAllowList},
		{"audience list", c.Audience},
		{"allowed node label keys", c.AllowedNodeLabelKeys},
		{"allowed pod label keys", c.AllowedPodLabelKeys},
	} {
		if len(l.items) > maxListItems {
			return nil, fmt.Errorf("cluster %q: the %s has %d items, more than %d", name, l.what, len(l.items), maxListItems)
		}
		if slices.Contains(l.items, "") {
			return nil, fmt.Errorf("cluster %q: the %s has an empty item", name, l.what)
		}
	}
	cl := &cluster{
		name:            name,
		serviceAccounts: map[string]bool{},
		audiences:       slices.Clone(c.Audience),
		nodeLabels:      set(c.AllowedNodeLabelKeys),
		podLabels:       set(c.AllowedPodLabelKeys),
	}
	for _, sa := range c.ServiceAccountAllowList {
		if _, _, err := parseServiceAccount(serviceAccountPrefix + sa); err != nil {
			return nil, fmt.Errorf("cluster %q: service account %q is not of the form <namespace>:<name>", name, sa)
		}
		cl.serviceAccounts[sa] = true
	}
	if len(cl.audiences) == 0 {
		cl.audiences = []string{DefaultAudience}
	}
	rc := rest.CopyConfig(c.REST)
	if rc.QPS == 0 {
		rc.QPS = defaultQPS
	}
	if rc.Burst == 0 {
		rc.Burst = defaultBurst
	}
	if rc.UserAgent == "" {
		rc.UserAgent = "spiffekit-k8s-psat"
	}
	var err error
	if cl.http, err = rest.HTTPClientFor(rc); err != nil {
		return nil, fmt.Errorf("cluster %q: API client: %w", name, err)
	}
	if cl.authn, err = authnclient.NewForConfigAndClient(rc, cl.http); err != nil {
		return nil, fmt.Errorf("cluster %q: API client: %w", name, err)
	}
	if cl.core, err = coreclient.NewForConfigAndClient(rc, cl.http); err != nil {
		return nil, fmt.Errorf("cluster %q: API client: %w", name, err)
	}
	return cl, nil
}

func set(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// LoadRESTConfig returns the API server configuration of a kubeconfig
// file, or, when kubeconfigFile is empty, of the pod the program runs in
// (its service account token and the cluster's CA, as mounted in every
// pod, and the KUBERNETES_SERVICE_HOST and _PORT variables). It reads the
// files named now; credentials a kubeconfig names (client certificates,
// token files, exec plugins) are used as client-go uses them.
func LoadRESTConfig(kubeconfigFile string) (*rest.Config, error) {
	if kubeconfigFile == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("psatserver: in-cluster API server configuration: %w", err)
		}
		return rc, nil
	}
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfigFile)
	if err != nil {
		return nil, fmt.Errorf("psatserver: kubeconfig %s: %w", kubeconfigFile, err)
	}
	if rc.Host == "" {
		return nil, errors.New("psatserver: kubeconfig " + kubeconfigFile + " names no API server")
	}
	return rc, nil
}
