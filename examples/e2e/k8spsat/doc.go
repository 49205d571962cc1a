// Package k8spsat holds the end-to-end tests of the k8s_psat node attestor:
// spiffe-server and spiffe-agent, the real programs, against real
// Kubernetes API servers (internal/testing/kubetest) with pod-bound
// projected service account tokens from the TokenRequest API. They need
// the binaries of scripts/kube-binaries (SPIFFEKIT_KUBE_BIN) and Debian's
// etcd-server, and skip without them, except in CI.
package k8spsat
