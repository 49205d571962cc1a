// Package saved keeps what a node agent serves its workloads across its
// restarts: [Workloads.Restore] serves again, when the agent starts with
// the agent SVID it saved, what the workloads file of its data directory
// holds (agent/internal/workloadfile: the entries, their SVIDs and
// WIT-SVIDs, the federated bundles and the taints), and [Workloads.Run]
// writes that file while the agent runs: once what it would hold has
// changed and then settled, at most a few looks apart while it keeps
// changing, a fraction of a second after a change of the taints (which a
// crash must not lose), and when the agent stops.
//
//	w := saved.New(saved.Config{Dir: dir, TrustDomain: td, Issuer: iss, Trust: st, Entries: r, ID: a.ID})
//	restored := w.Restore(ctx, id) // before the agent serves
//	last := w.State()
//	go w.Run(ctx, last) // until ctx ends, when it saves once more
//
// A file that cannot be trusted is refused with an error in the log, and
// the agent starts as if it had saved nothing.
package saved
