// Package k8s is the k8s workload attestor: it describes a process that
// runs in a Kubernetes pod by the pod and the container, as the node's
// kubelet lists them.
//
// It finds the pod's UID and the container's ID from the process's
// cgroups, and looks them up in the kubelet's list of the node's pods
// (GET /pods), on the kubelet's secure port with a bearer token (a
// service account token allowed to get nodes/proxy), or on its read-only
// port. The list is cached for a bounded time; a container the kubelet
// does not list yet (it has just started) is looked for again, for a
// bounded time. A process whose pod and container cannot be resolved gets
// no identity, never another pod's. See [Attestor].
//
// # Usage
//
//	a, err := k8s.New(k8s.Config{
//		KubeletURL: "https://127.0.0.1:10250",
//		RootCAs:    kubeletCAs, // the CA of the kubelet's serving certificate
//		Token:      readServiceAccountToken,
//	})
//	...
//	sels, err := a.Attest(ctx, w) // w from the Workload API's endpoint
//	// k8s:ns:payments, k8s:sa:api, k8s:pod-label:app:api,
//	// k8s:container-name:server, k8s:pod-owner:ReplicaSet:api-7c9d, ...
//
// The agent runs with the host's PID namespace (hostPID in its pod), so
// that it sees the workloads' processes.
package k8s
