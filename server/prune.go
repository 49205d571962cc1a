package server

import (
	"context"
	"errors"
	"time"

	"github.com/spiffekit/spiffekit/registry"
)

// pruneLoop deletes the expired entries every Config.EntryPruneInterval
// until ctx is done.
func (s *Server) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(s.cfg.EntryPruneInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			s.PruneEntries(ctx)
		}
	}
}

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
	pruned, failed := 0, 0
	var firstErr error
	for _, e := range s.node.Index().Expired() {
		_, err := s.stores.Entries.Delete(ctx, e.ID, e.Revision)
		switch {
		case err == nil:
			pruned++
			s.log.Debug("expired entry pruned", "entry_id", e.ID, "spiffe_id", e.SPIFFEID.String(),
				"expired_at", e.ExpiresAt)
		case errors.Is(err, registry.ErrNotFound), errors.Is(err, registry.ErrConflict):
			// Pruned by another server, or changed since it expired.
		case ctx.Err() != nil:
			return pruned
		default:
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	if pruned > 0 {
		s.log.Info("expired entries pruned", "count", pruned)
	}
	if failed > 0 {
		s.log.Warn("pruning expired entries failed; trying again at the next round", "failed", failed,
			"err", firstErr, "next_round_in", s.cfg.EntryPruneInterval)
	}
	return pruned
}
