// Package k8spsat is the Kubernetes projected service account token node
// attestor, k8s_psat: an agent running in a pod proves which node it runs
// on with the token the kubelet projects into its pod, and the server has
// the cluster's API server vouch for the token. This package is the agent
// side ([Client]) and the wire format ([Payload]); the server side, which
// talks to API servers with client-go, is package
// attest/k8spsat/psatserver, so that agents link none of client-go.
//
// # Protocol
//
//  1. The agent reads its projected token (a file the kubelet keeps fresh;
//     [ClientConfig].TokenPath) and sends {"cluster": <name>, "token":
//     <token>}, the payload of SPIRE's k8s_psat, so that agents and servers
//     of either project interoperate.
//  2. The server looks the cluster up by name, and asks that cluster's API
//     server to review the token (TokenReview) for the cluster's
//     audiences: the API server checks the signature (its own issuer's
//     keys: a token of another cluster fails), the expiry, the audience,
//     and that the pod the token is bound to still exists.
//  3. The server checks the service account against the cluster's
//     allow-list, then reads the pod the token names and the node the pod
//     runs on. The pod must still exist with the token's UID (the API
//     server may go on authenticating a deleted pod's token for a few
//     seconds, from its cache), and the node with the token's.
//
// There is no challenge: the token is a bearer credential, bound to its
// audience, its pod and a short lifetime. Give the agents' tokens an
// audience of their own (the projected volume's audience; the server's
// default is "spiffekit-server"), so that no other service the token is
// shown to can replay it to the server.
//
// The agent ID is spiffe://<trust domain>/spiffekit/agent/k8s_psat/
// <cluster>/<node UID>, one per node whichever pod runs the agent, and the
// agent may re-attest. The selectors, of type "k8s_psat", carry SPIRE's
// names (cluster, agent_ns, agent_sa, agent_pod_name, agent_pod_uid,
// agent_pod_label, agent_node_name, agent_node_uid, agent_node_label,
// agent_node_ip), so that entries carry over.
//
// # Usage
//
// In the agent's pod, with a projected token volume named spiffekit-agent
// mounted at /var/run/secrets/tokens:
//
//	client, err := k8spsat.NewClient(k8spsat.ClientConfig{Cluster: "cluster-a"})
//	// agent.Config{NodeAttestor: client, ...}
//	payload, err := client.Payload(ctx) // reads DefaultTokenPath again each time
package k8spsat
