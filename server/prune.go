package server

import (
	"context"

	"github.com/spiffekit/spiffekit/server/internal/prune"
)

// PruneEntries deletes the entries whose expiry has passed, as the node
// API's index last saw them (Run syncs it at each expiry), and returns how many it deleted. Each is
// deleted at the revision that expired: an entry updated since (another
// expiry) or already deleted (by another server sharing the store) is
// left alone. Run calls it every Config.EntryPruneInterval; failures are
// logged and tried again at the next round.
func (s *Server) PruneEntries(ctx context.Context) int {
	// The node API's Run syncs its index at each expiry, and wakes the
	// streams of the agents concerned: the index lists the entry as
	// expired from then on.
	return s.pruner().Prune(ctx)
}

// pruner deletes the expired entries every Config.EntryPruneInterval.
func (s *Server) pruner() prune.Entries {
	return prune.Entries{Index: s.node.Index(), Store: s.stores.Entries, Interval: s.cfg.EntryPruneInterval, Logger: s.log}
}
