// Package k8sreg registers the pods of a Kubernetes cluster automatically:
// a [Controller] watches Pods, Namespaces and Nodes with client-go's shared
// informers and keeps registration entries in step with [Template]s, the
// equivalent of spire-controller-manager's ClusterSPIFFEID resources.
//
// Each scheduled pod gets, for each template that selects it (by
// namespace and pod labels), an entry for the SPIFFE ID the template
// renders, with the DNS names, federated trust domains, TTLs and hint it
// gives, and the selectors k8s:ns:<namespace> and k8s:pod-uid:<pod UID>
// that the k8s workload attestor (attest/k8s) reports for the pod's
// processes. The entry's parent is the agent of the pod's node as the
// k8s_psat node attestor names it,
// spiffe://<td>/spiffekit/agent/k8s_psat/<cluster>/<node UID>: the agent
// ID itself, not a node alias, so that no entry per node is needed and an
// agent obtains exactly the entries of the pods of its own node.
//
// Templates come from a JSON file ([ParseTemplates]), a list of
// ClusterSPIFFEID specs with their field names, rather than from custom
// resources: the controller then needs no CRD installed, no extra RBAC and
// no API group of its own, and the file is versioned with the rest of the
// server's configuration.
//
//	f, _ := os.Open("templates.json")
//	templates, err := k8sreg.ParseTemplates(f, td)
//	...
//	ctl, err := k8sreg.New(k8sreg.Config{
//		Client: clientset, Store: store, TrustDomain: td,
//		ClusterName: "prod", Templates: templates,
//	})
//	...
//	err = ctl.Run(ctx) // until ctx is done
//
// The controller owns the entries it makes and touches no other (see
// [Controller] and [OwnedBy]).
package k8sreg
