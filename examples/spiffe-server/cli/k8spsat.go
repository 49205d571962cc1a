package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/spiffekit/spiffekit/attest/k8spsat"
	"github.com/spiffekit/spiffekit/attest/k8spsat/psatserver"
)

// k8sPSATKey is where the configuration file holds the k8s_psat node
// attestor's settings, as SPIRE's server configuration names them.
const k8sPSATKey = "node_attestors.k8s_psat"

const k8sPSATHelp = `the k8s_psat node attestor (Kubernetes projected service account tokens):
{"clusters": {"<name>": {"service_account_allow_list": ["<namespace>:<name>"],
"audience": ["spiffekit-server"], "kube_config_file": "<path, empty: in-cluster>",
"allowed_node_label_keys": [], "allowed_pod_label_keys": []}}}; present (even
with no cluster) enables it; SIGHUP reloads the clusters (see README.md)`

// k8sPSATConfig is the node_attestors.k8s_psat part of the configuration
// file, with SPIRE's plugin_data names.
type k8sPSATConfig struct {
	// Clusters are the clusters whose nodes may attest, by name.
	Clusters map[string]k8sClusterConfig `json:"clusters"`
}

// k8sClusterConfig is one cluster of k8sPSATConfig (see
// psatserver.ClusterConfig).
type k8sClusterConfig struct {
	ServiceAccountAllowList []string `json:"service_account_allow_list"`
	Audience                []string `json:"audience"`
	KubeConfigFile          string   `json:"kube_config_file"`
	AllowedNodeLabelKeys    []string `json:"allowed_node_label_keys"`
	AllowedPodLabelKeys     []string `json:"allowed_pod_label_keys"`
}

// k8sClusters loads the kubeconfig files of c and returns the attestor's
// clusters.
func k8sClusters(c *k8sPSATConfig) (map[string]psatserver.ClusterConfig, error) {
	out := make(map[string]psatserver.ClusterConfig, len(c.Clusters))
	for _, name := range slices.Sorted(maps.Keys(c.Clusters)) {
		cc := c.Clusters[name]
		rc, err := psatserver.LoadRESTConfig(cc.KubeConfigFile)
		if err != nil {
			return nil, fmt.Errorf("cluster %q: %w", name, err)
		}
		out[name] = psatserver.ClusterConfig{
			REST:                    rc,
			ServiceAccountAllowList: cc.ServiceAccountAllowList,
			Audience:                cc.Audience,
			AllowedNodeLabelKeys:    cc.AllowedNodeLabelKeys,
			AllowedPodLabelKeys:     cc.AllowedPodLabelKeys,
		}
	}
	return out, nil
}

// newK8sPSAT returns the k8s_psat attestor of c.
func newK8sPSAT(c *k8sPSATConfig) (*psatserver.Server, error) {
	clusters, err := k8sClusters(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k8sPSATKey, err)
	}
	s, err := psatserver.New(psatserver.Config{Clusters: clusters})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", k8sPSATKey, err)
	}
	return s, nil
}

// rereadFunc reads the run command's configuration again, from the same
// flags, environment and configuration file.
type rereadFunc func() (runConfig, error)

// rereader returns the rereadFunc of the run command given args.
func rereader(args []string) rereadFunc {
	return func() (runConfig, error) {
		var rc runConfig
		var stderr bytes.Buffer
		if _, ok := newRunCommand(&rc).Parse(args, io.Discard, &stderr); !ok {
			// The first line is the problem; the second points to -h.
			msg, _, _ := strings.Cut(stderr.String(), "\n")
			return rc, errors.New(msg)
		}
		return rc, nil
	}
}

// reloadOnHangup reloads the k8s_psat clusters of s (nil: not configured)
// from the configuration each time the process receives SIGHUP, until ctx
// is done; it returns a function that stops it and waits for it. Only
// the clusters are reloaded: other keys take effect at the next start.
func reloadOnHangup(ctx context.Context, s *psatserver.Server, reread rereadFunc, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reloadK8sPSAT(s, reread, log)
			}
		}
	})
	return func() {
		signal.Stop(hup)
		cancel()
		wg.Wait()
	}
}

// reloadK8sPSAT reads the configuration again and gives s its clusters.
// If the configuration no longer holds node_attestors.k8s_psat, s keeps no
// cluster. Whatever fails leaves the clusters as they were.
func reloadK8sPSAT(s *psatserver.Server, reread rereadFunc, log *slog.Logger) {
	log = log.With("attestor", k8spsat.Type)
	rc, err := reread()
	if err != nil {
		log.Error("SIGHUP: the configuration does not read; the clusters stay as they were", "err", err)
		return
	}
	if s == nil {
		if rc.K8sPSAT != nil {
			log.Warn("SIGHUP: " + k8sPSATKey + " was not configured at start: restart the server to enable it")
		} else {
			log.Info("SIGHUP: nothing to reload (only the k8s_psat clusters reload)")
		}
		return
	}
	conf := rc.K8sPSAT
	if conf == nil {
		conf = &k8sPSATConfig{}
	}
	clusters, err := k8sClusters(conf)
	if err == nil {
		err = s.SetClusters(clusters)
	}
	if err != nil {
		log.Error("SIGHUP: the clusters stay as they were", "err", err)
		return
	}
	log.Info("SIGHUP: clusters reloaded", "clusters", s.Clusters())
}
