// Package authz answers, for a node server, which registration entries each
// agent may obtain, from the server's index of the registry: cached for
// each generation of the server's state, and, when an agent holds or asks
// for what the index lacks, only after the index has read the registry's
// change feed up to now (once for every caller that asked meanwhile), so
// that a server behind the shared registry never denies an agent an entry
// another server gave it. A change that concerns one agent only (an entry
// parented by its ID) need not change the generation: Invalidate drops that
// agent's answer alone.
//
//	e := authz.New(idx, generation, changed)
//	m := e.Of(agent)                          // cached while the generation holds
//	e.Invalidate(agentID)                     // after the index applied a change of its entries
//	m, err := e.Current(ctx, agent, lacks)    // read up to now if lacks(m)
package authz

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// maxCached bounds the agents whose entries are cached; past it, the cache
// starts again.
const maxCached = 100000

// Entries answers which entries agents may obtain. It is safe for
// concurrent use.
type Entries struct {
	idx        *index.Index
	generation func() uint64
	changed    func()

	mu    sync.Mutex
	cache map[spiffeid.ID]cached
	// seq counts the calls of Invalidate; stale holds, for each agent, the
	// seq of its last invalidation, and floor the seq below which every
	// answer is stale (when stale grew too large and was forgotten). An
	// answer computed from a read of the index that began at seq s holds
	// while s is at least both.
	seq   uint64
	stale map[spiffeid.ID]uint64
	floor uint64

	// Reads of the registry's changes that must not wait for the server's
	// Run (see catchUp): one at a time, each serving every caller that
	// asked before it began.
	catchTurn  chan struct{} // capacity 1: held by the read under way
	catchAsked atomic.Uint64 // catch-ups asked for so far
	catchDone  uint64        // guarded by catchTurn: the asks the last read served
}

// cached is the set of entries an agent may obtain, computed once per
// generation.
type cached struct {
	gen       uint64
	seq       uint64            // Entries.seq when the read of the index began
	selectors []attest.Selector // the agent's, when computed
	entries   map[string]registry.Entry
}

// New returns the answers of idx. generation returns the server's current
// generation, which it changes whenever what agents may obtain may have
// changed; changed is called when a read of the change feed (see Current)
// found changes, for the server to change its generation.
func New(idx *index.Index, generation func() uint64, changed func()) *Entries {
	return &Entries{
		idx:        idx,
		generation: generation,
		changed:    changed,
		cache:      make(map[spiffeid.ID]cached),
		stale:      make(map[spiffeid.ID]uint64),
		catchTurn:  make(chan struct{}, 1),
	}
}

// Of returns the entries agent a may obtain, by entry ID, as the index has
// them: from the cache while the generation and a's selectors are those it
// was computed for, and a was not invalidated since.
func (e *Entries) Of(a registry.Agent) map[string]registry.Entry {
	gen := e.generation()
	e.mu.Lock()
	c, ok := e.cache[a.ID]
	fresh := ok && c.seq >= max(e.stale[a.ID], e.floor)
	e.mu.Unlock()
	// The selectors are compared too: an agent attested again under the
	// same ID with other selectors must not keep what the old ones gave.
	if fresh && c.gen == gen && slices.Equal(c.selectors, a.Selectors) {
		return c.entries
	}
	return e.At(a, gen)
}

// Invalidate drops the cached answers of the agents ids, whatever the
// generation: call it after the index applied a change that concerns
// them only. An answer being computed meanwhile, from a read of the index
// that may have begun before the change, is not kept either.
func (e *Entries) Invalidate(ids ...spiffeid.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.stale)+len(ids) > maxCached {
		clear(e.stale)
		e.floor = e.seq + 1
	}
	e.seq++
	for _, id := range ids {
		e.stale[id] = e.seq
		delete(e.cache, id)
	}
}

// Current returns the entries agent a may obtain, as Of does, unless lacks
// reports that they lack what the agent holds or asks for (an entry, or
// its revision). That may only mean that this server has not read the
// registry as far as the one the agent got it from: servers sharing a store
// read each other's writes at their next notification or poll, and an
// agent that fails over arrives with what the other one sent. Then it
// reads the registry's change feed up to now first, so that the server
// tells the agent to delete, or refuses, only what the registry really
// does not hold for it. It fails only when that read fails, or ctx is
// done.
func (e *Entries) Current(ctx context.Context, a registry.Agent, lacks func(map[string]registry.Entry) bool) (map[string]registry.Entry, error) {
	m := e.Of(a)
	if !lacks(m) {
		return m, nil
	}
	if err := e.catchUp(ctx); err != nil {
		return nil, err
	}
	// Not from the cache: the server's Run may have applied the changes
	// this read found already applied, and not yet changed the generation.
	return e.At(a, e.generation()), nil
}

// catchUp applies the registry's changes made until now, without waiting
// for the server's Run. Callers that ask while a read is under way share
// the next one: a read that began after a caller asked serves it.
func (e *Entries) catchUp(ctx context.Context) error {
	ticket := e.catchAsked.Add(1)
	select {
	case e.catchTurn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.catchTurn }()
	if e.catchDone >= ticket {
		return nil
	}
	asked := e.catchAsked.Load()
	n, err := e.idx.Sync(ctx)
	if err != nil {
		return fmt.Errorf("reading the registry's changes: %w", err)
	}
	if n > 0 {
		e.changed()
	}
	e.catchDone = asked
	return nil
}

// At reads from the index the entries agent a may obtain, and caches them
// for generation gen.
func (e *Entries) At(a registry.Agent, gen uint64) map[string]registry.Entry {
	// The sequence is taken before the index is read: an invalidation
	// after it makes the answer stale, though it may be stored after.
	e.mu.Lock()
	seq := e.seq
	e.mu.Unlock()
	list := e.idx.ForAgent(a.ID, a.Selectors)
	m := make(map[string]registry.Entry, len(list))
	for _, en := range list {
		m[en.ID] = en
	}
	e.mu.Lock()
	if len(e.cache) > maxCached {
		clear(e.cache)
	}
	e.cache[a.ID] = cached{gen: gen, seq: seq, selectors: a.Selectors, entries: m}
	e.mu.Unlock()
	return m
}
