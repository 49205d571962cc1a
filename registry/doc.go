// Package registry says who gets which identity: it defines registration
// entries, which map attested selectors to SPIFFE IDs, and the small
// interfaces of the stores that keep them.
//
//	e, err := store.Create(ctx, registry.Entry{
//		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/web"),
//		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent/node1"),
//		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
//	})
//	if err != nil {
//		return err
//	}
//	e.X509SVIDTTL = time.Hour
//	e, err = store.Update(ctx, e) // fails with ErrConflict if someone else won
//
//	entries, next, err := store.List(ctx, registry.Filter{
//		BySelectors: &registry.SelectorFilter{Selectors: callerSelectors, Match: registry.MatchSubset},
//	}, registry.Page{Size: 100})
//
// # Stores
//
// A [Store] is a [Reader], a [Writer] and a [ChangeFeed]. Every write appends
// an [Event] to the feed atomically with the write, so that consumers such as
// registry/index follow the store incrementally. Backends: registry/memstore
// (in memory) and registry/sqlstore (SQLite, PostgreSQL); both pass the
// contract suite in registry/registrytest. Optimistic concurrency control
// uses [Entry.Revision].
//
// # Limits
//
// [Entry.Validate] bounds every size an attacker or a careless operator could
// inflate: selectors per entry ([MaxSelectors]), selector lengths, DNS names,
// federated trust domains and the hint.
package registry
