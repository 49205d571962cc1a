// Package prune deletes from a server's store the registration entries
// whose expiry has passed.
package prune

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/spiffekit/spiffekit/registry"
)

// An Index lists the entries whose expiry has passed, as it last saw
// them (registry/index.Index is one).
type Index interface {
	Expired() []registry.Entry
}

// Entries deletes the expired entries of Store, as Index lists them.
type Entries struct {
	// Index lists the expired entries.
	Index Index
	// Store is where they are deleted.
	Store registry.Store
	// Interval is the time between two rounds of Run.
	Interval time.Duration
	// Logger receives what was pruned and what failed.
	Logger *slog.Logger
}

// Run prunes every Interval until ctx is done.
func (p Entries) Run(ctx context.Context) {
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			p.Prune(ctx)
		}
	}
}

// Prune deletes the entries Index lists as expired and returns how many
// it deleted. Each is deleted at the revision that expired: an entry
// updated since (another expiry) or already deleted (by another server
// sharing the store) is left alone. Failures are logged; the next round
// tries again.
func (p Entries) Prune(ctx context.Context) int {
	pruned, failed := 0, 0
	var firstErr error
	for _, e := range p.Index.Expired() {
		_, err := p.Store.Delete(ctx, e.ID, e.Revision)
		switch {
		case err == nil:
			pruned++
			p.Logger.Debug("expired entry pruned", "entry_id", e.ID, "spiffe_id", e.SPIFFEID.String(),
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
		p.Logger.Info("expired entries pruned", "count", pruned)
	}
	if failed > 0 {
		p.Logger.Warn("pruning expired entries failed; trying again at the next round", "failed", failed,
			"err", firstErr, "next_round_in", p.Interval)
	}
	return pruned
}
