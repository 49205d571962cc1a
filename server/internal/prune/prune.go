// Package prune deletes from a server's stores the registration entries
// and the join tokens whose expiry has passed.
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
	every(ctx, p.Interval, func() { p.Prune(ctx) })
}

// every calls f every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, f func()) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			f()
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

// tokenInterval is the time between two rounds of Tokens.Run when its
// Interval is zero.
const tokenInterval = 10 * time.Minute

// Tokens deletes the expired join tokens of Store.
type Tokens struct {
	// Store keeps the tokens.
	Store registry.TokenStore
	// Interval is the time between two rounds of Run; zero means 10
	// minutes.
	Interval time.Duration
	// Now is the clock of the tokens' expiry; nil means time.Now.
	Now func() time.Time
	// Logger receives what was pruned and what failed.
	Logger *slog.Logger
}

// Run deletes the expired join tokens every Interval until ctx is done.
// Failures are logged; the next round tries again.
func (p Tokens) Run(ctx context.Context) {
	interval, now := p.Interval, p.Now
	if interval == 0 {
		interval = tokenInterval
	}
	if now == nil {
		now = time.Now
	}
	every(ctx, interval, func() {
		if n, err := p.Store.PruneTokens(ctx, now()); err != nil {
			p.Logger.Warn("pruning expired join tokens failed", "err", err)
		} else if n > 0 {
			p.Logger.Info("pruned expired join tokens", "count", n)
		}
	})
}
