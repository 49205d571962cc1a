// Package replica is the node agent's copy of the registration entries its
// server pushes: [Entries] applies each sync update ([Entries.Replicate]),
// tells the server what it holds ([Entries.Revisions]) when the agent
// syncs again, and feeds the issuer's index (registry/index) through a
// change feed that drops what the index has read, so that the agent keeps
// no copy of the entries beside the index's.
//
//	r := replica.New()
//	idx, err := index.New(ctx, r, index.Config{}) // built while r is empty
//	...
//	err = r.Replicate(ctx, update.Upserts, update.Deleted)
//	n, err := idx.Sync(ctx) // reads the changes, which r then drops
//	held := r.Revisions()   // what the agent tells its server next time
//
// Its errors carry the prefix of package agent, whose they are.
package replica
