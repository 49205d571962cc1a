// Package psatserver is the server side of the k8s_psat node attestor
// (package attest/k8spsat describes the protocol): it admits a node whose
// agent presents a projected service account token that the node's
// cluster's API server authenticates, of an allowed service account,
// bound to a pod that still runs on that node. It talks to API servers
// with client-go.
//
// # Clusters
//
// One [Server] admits the nodes of many clusters, each with its own API
// server, credentials, allow-list and audiences. [Server.SetClusters],
// [Server.SetCluster] and [Server.RemoveCluster] change them while the
// server runs; an attestation under way keeps the cluster it started with.
// The server's identity in each cluster needs these permissions (the rules
// of a ClusterRole bound to it):
//
//	rules:
//	- {apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"]}
//	- {apiGroups: [""], resources: ["pods", "nodes"], verbs: ["get"]}
//
// # Usage
//
//	rc, err := psatserver.LoadRESTConfig("/etc/spiffekit/cluster-a.kubeconfig")
//	srv, err := psatserver.New(psatserver.Config{Clusters: map[string]psatserver.ClusterConfig{
//		"cluster-a": {REST: rc, ServiceAccountAllowList: []string{"spiffekit:spiffekit-agent"}},
//	}})
//	defer srv.Close()
//	// server.Config{NodeAttestors: map[string]attest.NodeAttestor{k8spsat.Type: srv}, ...}
//	res, err := srv.Attest(ctx, td, payload, nil)
//	if errors.Is(err, attest.ErrNodeRejected) {
//		// invalid, foreign or replayed token; deleted pod; service account not allowed
//	}
//	srv.RemoveCluster("cluster-a") // its nodes can no longer attest
package psatserver
