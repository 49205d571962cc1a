package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/attest/k8spsat/psatserver"
	"github.com/spiffekit/spiffekit/internal/testing/kubetest"
	"github.com/spiffekit/spiffekit/registry/k8sreg"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// manifests returns the objects of every file of deploy/kubernetes, the
// namespace's first, each with the file it comes from.
func manifests(t *testing.T) ([]*unstructured.Unstructured, []string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "deploy/kubernetes/*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	slices.SortStableFunc(files, func(a, b string) int {
		return bool2int(filepath.Base(b) == "namespace.yaml") - bool2int(filepath.Base(a) == "namespace.yaml")
	})
	var objs []*unstructured.Unstructured
	var from []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if m == nil {
				continue
			}
			objs = append(objs, &unstructured.Unstructured{Object: m})
			from = append(from, filepath.Base(f))
		}
	}
	return objs, from
}

func bool2int(b bool) int {
	if b {
		return 1
	}
	return 0
}

// typed returns the manifest object of kind and name converted to out.
func typed[T any](t *testing.T, objs []*unstructured.Unstructured, kind, name string, out *T) *T {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true), "%s %s", kind, name)
			return out
		}
	}
	t.Fatalf("no %s %s in deploy/kubernetes", kind, name)
	return nil
}

// TestKubernetesManifests creates every object of deploy/kubernetes in a
// real API server, validating fields strictly, so that a misspelt or
// misplaced field, a bad value or a wrong API version fails; then asks
// the API server whether the service accounts may do what the programs
// do.
func TestKubernetesManifests(t *testing.T) {
	c := kubetest.Shared(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig)
	require.NoError(t, err)
	dyn, err := dynamic.NewForConfig(cfg)
	require.NoError(t, err)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.Client.Discovery()))

	objs, from := manifests(t)
	create := func(o *unstructured.Unstructured) error {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return err
		}
		opts := metav1.CreateOptions{FieldValidation: "Strict"}
		if o.GetNamespace() != "" {
			_, err = dyn.Resource(m.Resource).Namespace(o.GetNamespace()).Create(t.Context(), o, opts)
		} else {
			_, err = dyn.Resource(m.Resource).Create(t.Context(), o, opts)
		}
		return err
	}
	kinds := map[string]int{}
	for i, o := range objs {
		require.NoError(t, create(o), "%s: %s %s", from[i], o.GetKind(), o.GetName())
		kinds[o.GetKind()]++
	}
	t.Logf("created %d objects: %v", len(objs), kinds)
	for _, k := range []string{"Namespace", "StatefulSet", "DaemonSet", "Deployment", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "Service", "ServiceAccount"} {
		assert.Positive(t, kinds[k], "no %s", k)
	}

	// The creation can fail: a misspelt field is refused.
	bad := objs[slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "DaemonSet" })].DeepCopy()
	bad.SetName("misspelt")
	spec := bad.Object["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	spec["hostPid"] = true
	err = create(bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), "hostPid")

	// RBAC as the API server applies it.
	can := func(sa string, attrs authzv1.ResourceAttributes) bool {
		r, err := c.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authzv1.SubjectAccessReview{
			Spec: authzv1.SubjectAccessReviewSpec{User: "system:serviceaccount:spiffekit:" + sa, ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		require.NoError(t, err)
		return r.Status.Allowed
	}
	assert.True(t, can("spiffe-server", authzv1.ResourceAttributes{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"}))
	for _, res := range []string{"pods", "nodes", "namespaces"} {
		for _, verb := range []string{"get", "list", "watch"} {
			assert.True(t, can("spiffe-server", authzv1.ResourceAttributes{Resource: res, Verb: verb}), "%s %s", verb, res)
		}
	}
	assert.False(t, can("spiffe-server", authzv1.ResourceAttributes{Resource: "secrets", Verb: "get"}), "the server reads no secret")
	assert.True(t, can("spiffe-agent", authzv1.ResourceAttributes{Resource: "nodes", Subresource: "proxy", Verb: "get"}))
	assert.False(t, can("spiffe-agent", authzv1.ResourceAttributes{Group: "authentication.k8s.io", Resource: "tokenreviews", Verb: "create"}))

	// A pod of the DaemonSet, as its controller would make it, attests
	// with the token its volume projects, to the server's k8s_psat
	// attestor configured as the server's ConfigMap says, with the
	// server's service account's rights.
	var ds appsv1.DaemonSet
	typed(t, objs, "DaemonSet", "spiffe-agent", &ds)
	var scm corev1.ConfigMap
	typed(t, objs, "ConfigMap", "spiffe-server", &scm)
	var sc serverConfig
	require.NoError(t, json.Unmarshal([]byte(scm.Data["server.json"]), &sc))
	node := c.Node(t, map[string]string{"topology.kubernetes.io/zone": "zone-a"}, "10.1.2.3")
	podSpec := *ds.Spec.Template.Spec.DeepCopy()
	podSpec.NodeName = node.Name
	pod, err := c.Client.CoreV1().Pods(ds.Namespace).Create(t.Context(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: ds.Name + "-", Namespace: ds.Namespace, Labels: ds.Spec.Template.Labels},
		Spec:       podSpec,
	}, metav1.CreateOptions{FieldValidation: "Strict"})
	require.NoError(t, err)
	audience := ""
	for _, v := range podSpec.Volumes {
		if v.Projected != nil {
			for _, src := range v.Projected.Sources {
				if src.ServiceAccountToken != nil {
					audience = src.ServiceAccountToken.Audience
				}
			}
		}
	}
	token := c.Token(t, pod, audience)

	asServer := rest.CopyConfig(cfg)
	asServer.Impersonate.UserName = "system:serviceaccount:spiffekit:spiffe-server"
	clusters := map[string]psatserver.ClusterConfig{}
	for name, cl := range sc.NodeAttestors.K8sPSAT.Clusters {
		clusters[name] = psatserver.ClusterConfig{REST: asServer, ServiceAccountAllowList: cl.ServiceAccountAllowList,
			Audience: cl.Audience, AllowedNodeLabelKeys: cl.AllowedNodeLabelKeys}
	}
	attestor, err := psatserver.New(psatserver.Config{Clusters: clusters})
	require.NoError(t, err)
	defer attestor.Close()
	td := spiffeid.RequireTrustDomainFromString(sc.TrustDomain)
	res, err := attestor.Attest(t.Context(), td, k8spsat.Payload{Cluster: "demo", Token: token}.Marshal(), nil)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://"+sc.TrustDomain+"/spiffekit/agent/k8s_psat/demo/"+string(node.UID), res.AgentID.String())
	assert.True(t, res.Selectors.Contains(attest.Selector{Type: "k8s_psat", Value: "agent_node_label:topology.kubernetes.io/zone:zone-a"}), "%s", res.Selectors)
	assert.True(t, res.Selectors.Contains(attest.Selector{Type: "k8s_psat", Value: "agent_sa:spiffe-agent"}), "%s", res.Selectors)

	// Without the server's ClusterRole, the same attestation cannot be
	// decided: the RBAC above is what it needs.
	noRights := rest.CopyConfig(cfg)
	noRights.Impersonate.UserName = "system:serviceaccount:spiffekit:spiffe-agent"
	cl := clusters["demo"]
	cl.REST = noRights
	require.NoError(t, attestor.SetCluster("demo", cl))
	_, err = attestor.Attest(t.Context(), td, k8spsat.Payload{Cluster: "demo", Token: token}.Marshal(), nil)
	require.Error(t, err)
	assert.NotErrorIs(t, err, attest.ErrNodeRejected, "a server without rights cannot decide")
}

// serverConfig is what TestKubernetesWiring reads of the server's
// configuration file (the programs' own tests read all of it).
type serverConfig struct {
	TrustDomain   string `json:"trust_domain"`
	Bind          string `json:"bind"`
	NodeAttestors struct {
		K8sPSAT struct {
			Clusters map[string]struct {
				ServiceAccountAllowList []string `json:"service_account_allow_list"`
				Audience                []string `json:"audience"`
				AllowedNodeLabelKeys    []string `json:"allowed_node_label_keys"`
			} `json:"clusters"`
		} `json:"k8s_psat"`
	} `json:"node_attestors"`
	DataDir     string `json:"data_dir"`
	AdminSocket string `json:"admin_socket"`
}

// agentConfig is what TestKubernetesWiring reads of the agent's.
type agentConfig struct {
	TrustDomain  string   `json:"trust_domain"`
	Servers      []string `json:"servers"`
	TrustBundle  string   `json:"trust_bundle"`
	DataDir      string   `json:"data_dir"`
	Socket       string   `json:"socket"`
	NodeAttestor struct {
		K8sPSAT struct {
			Cluster   string `json:"cluster"`
			TokenPath string `json:"token_path"`
		} `json:"k8s_psat"`
	} `json:"node_attestor"`
}

// mountOf returns the volume mounted at a directory holding file, and
// the file's path in it.
func mountOf(t *testing.T, pod corev1.PodSpec, file string) (corev1.Volume, string) {
	t.Helper()
	return mountIn(t, pod, pod.Containers[0], file)
}

// mountIn is mountOf for container c of pod.
func mountIn(t *testing.T, pod corev1.PodSpec, c corev1.Container, file string) (corev1.Volume, string) {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if rel, ok := strings.CutPrefix(file, m.MountPath+"/"); ok {
			for _, v := range pod.Volumes {
				if v.Name == m.Name {
					return v, rel
				}
			}
		}
	}
	t.Fatalf("nothing mounted holds %s", file)
	return corev1.Volume{}, ""
}

// TestKubernetesWiring checks that the manifests agree with each other
// and with the configuration files they carry: the agents' token is for an
// audience and of a service account the server takes, files are where the
// configuration says, the workload mounts the agent's socket directory.
func TestKubernetesWiring(t *testing.T) {
	objs, _ := manifests(t)
	var scm, acm corev1.ConfigMap
	typed(t, objs, "ConfigMap", "spiffe-server", &scm)
	typed(t, objs, "ConfigMap", "spiffe-agent", &acm)
	var sc serverConfig
	require.NoError(t, json.Unmarshal([]byte(scm.Data["server.json"]), &sc))
	var ac agentConfig
	require.NoError(t, json.Unmarshal([]byte(acm.Data["agent.json"]), &ac))
	var sts appsv1.StatefulSet
	typed(t, objs, "StatefulSet", "spiffe-server", &sts)
	var ds appsv1.DaemonSet
	typed(t, objs, "DaemonSet", "spiffe-agent", &ds)
	var wl appsv1.Deployment
	typed(t, objs, "Deployment", "example-workload", &wl)
	var svc corev1.Service
	typed(t, objs, "Service", "spiffe-server", &svc)
	agentPod, serverPod := ds.Spec.Template.Spec, sts.Spec.Template.Spec

	assert.Equal(t, sc.TrustDomain, ac.TrustDomain)
	cluster, ok := sc.NodeAttestors.K8sPSAT.Clusters[ac.NodeAttestor.K8sPSAT.Cluster]
	require.True(t, ok, "the agents' cluster %q is not one of the server's", ac.NodeAttestor.K8sPSAT.Cluster)
	assert.Contains(t, cluster.ServiceAccountAllowList, ds.Namespace+":"+agentPod.ServiceAccountName)

	// The projected token: where the agent reads it, for the server's
	// audience.
	v, rel := mountOf(t, agentPod, ac.NodeAttestor.K8sPSAT.TokenPath)
	require.NotNil(t, v.Projected, "the token's volume is not projected")
	var tokenAudience string
	for _, s := range v.Projected.Sources {
		if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == rel {
			tokenAudience = s.ServiceAccountToken.Audience
		}
	}
	assert.Contains(t, cluster.Audience, tokenAudience, "the token's audience")

	// The bundle, from its ConfigMap.
	v, rel = mountOf(t, agentPod, ac.TrustBundle)
	require.NotNil(t, v.ConfigMap)
	var bundle corev1.ConfigMap
	typed(t, objs, "ConfigMap", v.ConfigMap.Name, &bundle)
	assert.Equal(t, "bundle.pem", rel)

	// The agent's configuration file is the ConfigMap's.
	v, rel = mountOf(t, agentPod, "/etc/spiffe-agent/agent.json")
	require.NotNil(t, v.ConfigMap)
	assert.Equal(t, acm.Name, v.ConfigMap.Name)
	assert.Contains(t, acm.Data, rel)
	assert.Equal(t, []string{"run", "-config", "/etc/spiffe-agent/agent.json"}, agentPod.Containers[0].Args)
	v, rel = mountOf(t, serverPod, "/etc/spiffe-server/server.json")
	require.NotNil(t, v.ConfigMap)
	assert.Equal(t, scm.Name, v.ConfigMap.Name)
	assert.Contains(t, scm.Data, rel)
	assert.Equal(t, []string{"run", "-config", "/etc/spiffe-server/server.json"}, serverPod.Containers[0].Args)

	// The server's data on its claim; its admin socket where healthcheck
	// looks for it (the default).
	require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
	assert.Contains(t, serverPod.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: sts.Spec.VolumeClaimTemplates[0].Name, MountPath: sc.DataDir})
	assert.Equal(t, "/run/spiffe-server/admin.sock", sc.AdminSocket)

	// The agent reaches the server through its Service.
	assert.Equal(t, []string{svc.Name + "." + svc.Namespace + ".svc:" + "8081"}, ac.Servers)
	assert.Equal(t, int32(8081), svc.Spec.Ports[0].Port)
	assert.True(t, strings.HasSuffix(sc.Bind, ":8081"))

	// The agent sees the host's processes; its socket is on the host,
	// where the workload mounts it.
	assert.True(t, agentPod.HostPID)
	v, _ = mountOf(t, agentPod, ac.Socket)
	require.NotNil(t, v.HostPath)
	agentSocketDir := v.HostPath.Path
	assert.Equal(t, path.Dir(ac.Socket), agentSocketDir)
	_, _ = mountOf(t, agentPod, ac.DataDir+"/x")
	caps := agentPod.Containers[0].SecurityContext.Capabilities
	assert.Equal(t, []corev1.Capability{"ALL"}, caps.Drop)
	assert.Equal(t, []corev1.Capability{"SYS_PTRACE"}, caps.Add)

	// The registrar beside the server: the server's trust domain, cluster
	// and admin socket (through the shared volume), templates the
	// controller reads.
	require.Len(t, serverPod.Containers, 2)
	reg := serverPod.Containers[1]
	require.Equal(t, "k8s-registrar", reg.Name)
	flags := map[string]string{}
	for i := 0; i+1 < len(reg.Args); i += 2 {
		flags[reg.Args[i]] = reg.Args[i+1]
	}
	assert.Equal(t, sc.TrustDomain, flags["-trust-domain"])
	assert.Contains(t, sc.NodeAttestors.K8sPSAT.Clusters, flags["-cluster"])
	assert.Equal(t, sc.AdminSocket, flags["-admin-socket"])
	sv, _ := mountOf(t, serverPod, sc.AdminSocket)
	rv, _ := mountIn(t, serverPod, reg, flags["-admin-socket"])
	assert.Equal(t, sv.Name, rv.Name, "the admin socket's directory is shared")
	v, rel = mountIn(t, serverPod, reg, flags["-templates"])
	require.NotNil(t, v.ConfigMap)
	var rcm corev1.ConfigMap
	typed(t, objs, "ConfigMap", v.ConfigMap.Name, &rcm)
	templates, err := k8sreg.ParseTemplates(strings.NewReader(rcm.Data[rel]), spiffeid.RequireTrustDomainFromString(sc.TrustDomain))
	require.NoError(t, err)
	assert.NotEmpty(t, templates)

	wpod := wl.Spec.Template.Spec
	var endpoint string
	for _, e := range wpod.Containers[0].Env {
		if e.Name == "SPIFFE_ENDPOINT_SOCKET" {
			endpoint = e.Value
		}
	}
	wsock, ok := strings.CutPrefix(endpoint, "unix://")
	require.True(t, ok, "SPIFFE_ENDPOINT_SOCKET %q", endpoint)
	v, rel = mountOf(t, wpod, wsock)
	require.NotNil(t, v.HostPath)
	assert.Equal(t, agentSocketDir, v.HostPath.Path)
	assert.Equal(t, path.Base(ac.Socket), rel)
}
