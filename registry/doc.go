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
// # Notifications
//
// A store that is a [Notifier] tells consumers of its writes, so that they
// read the change feed (or the records) at once instead of polling. A
// consumer subscribes to the [Topic]s it follows, then reads, then reads
// again on every signal:
//
//	changes, cancel := store.Subscribe(registry.TopicEntries | registry.TopicAgents)
//	defer cancel()
//	for {
//		catchUp(ctx) // Changes after the last sequence seen, ListAgents, ...
//		select {
//		case <-changes:
//		case <-ticker.C: // a slow poll stays as a safety net
//		case <-ctx.Done():
//			return ctx.Err()
//		}
//	}
//
// A signal carries nothing: writes coalesce, and a store may signal without
// a write (after reconnecting to its database). It comes after the write is
// visible to readers, and only to the subscribers of the write's topic.
// registry/memstore and SQLite tell of the writes made through the store
// value; PostgreSQL of every process's writes while sqlstore's Store.Run
// listens. Join tokens have no topic.
//
// # The servers of one trust domain
//
// Servers that share a store each publish their share of the trust
// domain's bundle, with a description of their CA's authorities
// ([ServerBundleStore], [ServerAuthority]). An operator's taint or
// revocation of an authority is an [AuthorityMark], kept by the same store:
// the authority's own server applies it to its CA, and every server honours
// it in the bundle and taints it hands out.
//
// # Limits
//
// [Entry.Validate] bounds every size an attacker or a careless operator could
// inflate: selectors per entry ([MaxSelectors]), selector lengths, DNS names,
// federated trust domains and the hint.
package registry
