// Package kubelet is the end-to-end test of the k8s workload attestor
// against a real kubelet: kube-apiserver, a kubelet running hostNetwork
// pods through containerd, spiffe-server with k8s_psat, spiffe-agent with
// the k8s workload attestor reading the kubelet's secure port, and
// k8s-registrar registering the pods from templates. A process in each
// pod's container fetches its SVID over the agent's socket (a hostPath
// mount). The test runs in long mode only (SPIFFEKIT_LONG=1, as root, with
// SPIFFEKIT_KUBE_BIN set); it measures pod created to SVID held.
package kubelet
