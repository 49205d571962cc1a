// Package memstore is an in-memory [registry.Store]: fast, safe for
// concurrent use, and gone when the process exits. It suits tests, examples
// and single-process deployments that load their entries from configuration.
//
//	s := memstore.New(memstore.Config{})
//	e, err := s.Create(ctx, registry.Entry{
//		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/web"),
//		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent/node1"),
//		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1000"}},
//	})
//	if err != nil {
//		return err
//	}
//	entries, next, err := s.List(ctx, registry.Filter{}, registry.Page{Size: 100})
//
// The store also keeps node agents' records, join tokens and bundles (see
// [Store]), so one value can back a whole issuing server in tests.
//
// It is a [registry.Notifier]: a write signals the subscribers of its topic
// (entries, agents, bundles, authorities) before it returns.
//
// The change feed keeps every event for the life of the store; its sequence
// numbers are contiguous from 1.
package memstore
