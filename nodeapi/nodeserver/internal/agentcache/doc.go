// Package agentcache is a node server's view of the agent records it
// shares, through a registry.AgentStore, with the other servers of its
// trust domain: a cache of every record, read again when the store tells of
// a write (spaced, so that a fleet renewing costs a few reads a second) and
// written through, and the wake-ups of the entry streams of one agent when
// its record's serials change or it goes.
//
//	c := agentcache.New(store)
//	changed, err := c.Reload(ctx)    // every record, again
//	a, found, err := c.Get(ctx, id)  // cached, else from the store
//	a, err = c.Update(ctx, a)        // only if the record still exists
//	woken, stop := c.Follow(id)      // an entry stream of agent id
//
// A Reloader spaces the reads that the store's notifications cause.
package agentcache
