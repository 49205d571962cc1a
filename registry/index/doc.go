// Package index answers "which registration entries apply?" from memory, fast
// enough to sit on the path of every Workload API and agent request.
//
// An [Index] loads every entry of a store once, then follows the store's
// change feed: each event updates the index in place, in microseconds, and
// the index is never rebuilt.
//
//	idx, err := index.New(ctx, store, index.Config{ServerID: serverID})
//	if err != nil {
//		return err
//	}
//	go idx.Run(ctx) // follow the change feed until ctx is done
//
//	// A workload attested with these selectors gets these entries:
//	entries := idx.ForWorkload([]attest.Selector{{Type: "unix", Value: "uid:1000"}})
//	// An agent gets the entries it may serve:
//	entries = idx.ForAgent(agentID, nodeSelectors)
//
// # Matching
//
// An entry applies to a workload when every one of the entry's selectors is
// among the workload's selectors. An entry with a selector the workload lacks
// never applies, however many others match: granting it would hand out an
// identity on partial evidence.
//
// # Algorithm and cost
//
// Selector strings are interned: each distinct selector is stored once, and
// an entry refers to its selectors by pointer. Each entry is listed under one
// of its selectors, its anchor: the one used by the fewest entries when it
// was inserted, so a selector every workload has (a container name, a
// cluster) rarely anchors anything. Every entry that applies to a caller is
// anchored on one of the caller's selectors, so a query walks only the
// caller's anchor lists and checks each candidate's selectors against the
// caller's by pointer comparison. The cost depends on those lists, not on
// the size of the registry. Entries are also grouped by parent ID for agent
// queries. Inserting or removing an entry costs O(number of its selectors):
// each entry remembers its position in the lists it is on.
//
// # Loading
//
// [New] reads a store that is a [Scanner] (registry/sqlstore is one) in one
// pass, which the SQL store decodes on every core while the rows arrive,
// and sizes its table of entries from a [Counter]; it reads any other
// store page by page through List. A server with 1,000,000 SQLite entries
// spends about 12 s of CPU starting, most of it in this read (see
// docs/PERFORMANCE.md).
package index
