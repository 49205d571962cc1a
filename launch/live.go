package launch

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// seedPage is the page size of the read of the live launches at the first
// launch.
const seedPage = 1000

// A liveCounter bounds the live launches.
type liveCounter interface {
	// reserve refuses a launch, with an error wrapping ErrTooManyLive,
	// while max launches are alive; else it holds a place for it, which
	// made fills (ok: the launch id was made, expiring at expires) or
	// frees (not ok).
	reserve(ctx context.Context, max int) (made func(id string, expires time.Time, ok bool), err error)
	// ended tells that launch id ended.
	ended(id string)
}

func tooMany(n int) error {
	return fmt.Errorf("%w: %d alive, the most allowed; end one, or wait for one to expire", ErrTooManyLive, n)
}

// liveFunc is Config.Live.
type liveFunc func() int

func (f liveFunc) reserve(_ context.Context, max int) (func(string, time.Time, bool), error) {
	if n := f(); n >= max {
		return nil, tooMany(n)
	}
	return func(string, time.Time, bool) {}, nil
}

func (liveFunc) ended(string) {}

// ownCount counts the live launches a Server knows of: those the store
// held at its first launch, and those it made since. Launches in the making
// hold a place, so that concurrent launches never pass the maximum.
type ownCount struct {
	parent  spiffeid.ID
	entries Entries
	now     func() time.Time

	// mu is held across the store's read at the first launch: the count
	// is not known before it ends.
	mu       sync.Mutex
	seeded   bool
	launches map[string]time.Time // ID -> expiry
	pending  int
}

func (c *ownCount) reserve(ctx context.Context, max int) (func(string, time.Time, bool), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seeded {
		if err := c.seed(ctx); err != nil {
			return nil, err
		}
		c.seeded = true
	}
	if len(c.launches)+c.pending >= max {
		// Forget the expired ones only when they matter: this walks them
		// all.
		now := c.now()
		for id, exp := range c.launches {
			if !now.Before(exp) {
				delete(c.launches, id)
			}
		}
		if n := len(c.launches) + c.pending; n >= max {
			return nil, tooMany(n)
		}
	}
	c.pending++
	return func(id string, expires time.Time, ok bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.pending--
		if ok {
			c.launches[id] = expires
		}
	}, nil
}

func (c *ownCount) ended(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.launches, id)
}

// seed reads the live launches of the store, when Entries can list them.
// It must be called with c.mu held.
func (c *ownCount) seed(ctx context.Context) error {
	r, ok := c.entries.(registry.Reader)
	if !ok {
		return nil
	}
	now := c.now()
	page := registry.Page{Size: seedPage}
	for {
		entries, next, err := r.List(ctx, registry.Filter{ByParentID: c.parent}, page)
		if err != nil {
			return fmt.Errorf("launch: counting the live launches: %w", err)
		}
		for _, e := range entries {
			if !e.Expired(now) {
				c.launches[e.ID] = e.ExpiresAt
			}
		}
		if next == "" {
			return nil
		}
		page.Token = next
	}
}
