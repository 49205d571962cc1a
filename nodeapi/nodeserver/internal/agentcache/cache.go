package agentcache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Cache holds every agent record of a store as this server read it last,
// and the entry streams that follow one agent. It is safe for concurrent
// use.
type Cache struct {
	store registry.AgentStore

	mu     sync.Mutex
	agents map[spiffeid.ID]registry.Agent
	// follows are the agents with open entry streams here: their streams
	// look again when the cached record's serials change, or it goes.
	follows map[spiffeid.ID]*follow
}

// follow wakes the entry streams of one agent.
type follow struct {
	streams int           // open entry streams of the agent
	changed chan struct{} // closed and replaced by wakeLocked
}

// New returns an empty cache of store's records; Reload fills it.
func New(store registry.AgentStore) *Cache {
	return &Cache{store: store, agents: map[spiffeid.ID]registry.Agent{}, follows: map[spiffeid.ID]*follow{}}
}

// Len returns the number of records cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.agents)
}

// Cached returns the cached record of id, without reading the store.
func (c *Cache) Cached(id spiffeid.ID) (registry.Agent, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.agents[id]
	return a, ok
}

// Reload reads every record, wakes the followers of an agent whose record
// came, went or changed serials, and reports whether a record read before
// was removed, banned or changed its selectors, or one not read before is
// banned: what every open stream must react to. On error the cache is
// kept.
func (c *Cache) Reload(ctx context.Context) (changed bool, err error) {
	list, err := c.store.ListAgents(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the agent records: %w", err)
	}
	m := make(map[spiffeid.ID]registry.Agent, len(list))
	for _, a := range list {
		m[a.ID] = a
	}
	// Compared under the lock: once published, m is written by the
	// writes through the cache.
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.agents
	c.agents = m
	for id := range c.follows {
		a, wasCached := old[id]
		b, isCached := m[id]
		if wasCached != isCached || !sameSerials(a, b) {
			c.wakeLocked(id)
		}
	}
	for id, a := range old {
		b, ok := m[id]
		if !ok || a.Banned != b.Banned || !slices.Equal(a.Selectors, b.Selectors) {
			return true, nil
		}
	}
	// A record new here concerns no open stream (a stream's agent is cached
	// from the moment it authenticates), so a fleet attesting does not make
	// every stream look again; unless it is banned, in case the cache lost
	// it to a read that raced with a write.
	for id, b := range m {
		if _, ok := old[id]; !ok && b.Banned {
			return true, nil
		}
	}
	return false, nil
}

// Get returns the cached record of id, reading the store when the cache
// has none (the agent may have attested through another server).
func (c *Cache) Get(ctx context.Context, id spiffeid.ID) (registry.Agent, bool, error) {
	if a, ok := c.Cached(id); ok {
		return a, true, nil
	}
	return c.Read(ctx, id)
}

// Read reads the record of id from the store, bypassing the cache, and
// caches it. found is false when the store has no such record.
func (c *Cache) Read(ctx context.Context, id spiffeid.ID) (a registry.Agent, found bool, err error) {
	a, err = c.store.GetAgent(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return registry.Agent{}, false, nil
	}
	if err != nil {
		return registry.Agent{}, false, fmt.Errorf("reading the agent record of %s: %w", id, err)
	}
	c.cache(a)
	return a, true, nil
}

// Put writes a record (registry.AgentStore.PutAgent) and caches it as
// stored: banned if it was banned meanwhile, which the caller checks.
func (c *Cache) Put(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	stored, err := c.store.PutAgent(ctx, a)
	if err != nil {
		return registry.Agent{}, fmt.Errorf("storing the agent record of %s: %w", a.ID, err)
	}
	c.cache(stored)
	return stored, nil
}

// Update writes a record that must still exist
// (registry.AgentStore.UpdateAgent) and caches it as stored, as Put does.
// When the store has no such record (the agent was evicted, through
// another server, since a was read), it writes nothing, forgets the agent
// and wakes its followers, and returns an error wrapping
// registry.ErrNotFound.
func (c *Cache) Update(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	stored, err := c.store.UpdateAgent(ctx, a)
	if errors.Is(err, registry.ErrNotFound) {
		c.mu.Lock()
		if _, ok := c.agents[a.ID]; ok {
			delete(c.agents, a.ID)
			c.wakeLocked(a.ID)
		}
		c.mu.Unlock()
		return registry.Agent{}, fmt.Errorf("updating the agent record of %s: %w", a.ID, err)
	}
	if err != nil {
		return registry.Agent{}, fmt.Errorf("updating the agent record of %s: %w", a.ID, err)
	}
	c.cache(stored)
	return stored, nil
}

// cache caches a, and wakes the entry streams of its agent if its serials
// changed: a stream opened with an SVID that is now superseded must end.
func (c *Cache) cache(a registry.Agent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.agents[a.ID]
	c.agents[a.ID] = a
	if !ok || !sameSerials(old, a) {
		c.wakeLocked(a.ID)
	}
}

// sameSerials reports whether a and b name the same current and previous
// agent SVIDs.
func sameSerials(a, b registry.Agent) bool {
	return a.SerialNumber == b.SerialNumber && a.PreviousSerialNumber == b.PreviousSerialNumber
}

// Follow registers an entry stream of agent id. changed returns the
// channel closed when the agent's cached record next changes serials or
// goes, or Wake names the agent (take it before reading the record); stop
// ends the registration. Only the agent's own streams wake, not every
// stream: renewals are frequent.
func (c *Cache) Follow(id spiffeid.ID) (changed func() <-chan struct{}, stop func()) {
	c.mu.Lock()
	f, ok := c.follows[id]
	if !ok {
		f = &follow{changed: make(chan struct{})}
		c.follows[id] = f
	}
	f.streams++
	c.mu.Unlock()
	changed = func() <-chan struct{} {
		c.mu.Lock()
		defer c.mu.Unlock()
		return f.changed
	}
	stop = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if f.streams--; f.streams == 0 {
			delete(c.follows, id)
		}
	}
	return changed, stop
}

// Wake wakes the entry streams of agent id that Follow registered, if
// any: what the agent may obtain changed.
func (c *Cache) Wake(id spiffeid.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wakeLocked(id)
}

// wakeLocked wakes the entry streams of agent id. c.mu must be held.
func (c *Cache) wakeLocked(id spiffeid.ID) {
	if f, ok := c.follows[id]; ok {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}
