package authz_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/authz"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td       = spiffeid.RequireTrustDomainFromString("example.org")
	serverID = spiffeid.RequireFromPath(td, "/spiffekit/server")
	agentID  = spiffeid.RequireFromPath(td, "/spiffekit/agent/test/node")
	uid      = attest.Selector{Type: "unix", Value: "uid:1000"}
)

// feed is the registry's change feed as the index reads it, counting the
// reads, failing them when broken, holding them while gated.
type feed struct {
	*memstore.Store
	reads  atomic.Int32
	broken atomic.Bool
	gate   atomic.Pointer[chan struct{}] // when set, reads wait for it to close
}

func (f *feed) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	f.reads.Add(1)
	if gate := f.gate.Load(); gate != nil {
		<-*gate
	}
	if f.broken.Load() {
		return nil, errors.New("the database is away")
	}
	return f.Store.Changes(ctx, after, limit)
}

// server is what authz needs of a node server: a generation and an index.
type server struct {
	store *memstore.Store
	feed  *feed
	idx   *index.Index
	gen   atomic.Uint64
	e     *authz.Entries
}

func newServer(t *testing.T) *server {
	s := &server{store: memstore.New(memstore.Config{})}
	s.feed = &feed{Store: s.store}
	var err error
	s.idx, err = index.New(t.Context(), s.feed, index.Config{ServerID: serverID})
	require.NoError(t, err)
	s.e = authz.New(s.idx, s.gen.Load, func() { s.gen.Add(1) })
	return s
}

func (s *server) create(t *testing.T, path string, parent spiffeid.ID, sels ...attest.Selector) registry.Entry {
	e, err := s.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, path), ParentID: parent, Selectors: sels})
	require.NoError(t, err)
	return e
}

func agent(sels ...attest.Selector) registry.Agent {
	return registry.Agent{ID: agentID, AttestorType: "test", Selectors: sels}
}

// Of answers from the index: the agent's own entries and those of the node
// aliases its selectors match; the answer is cached while the generation
// and the agent's selectors are those it was computed for.
func TestOf(t *testing.T) {
	s := newServer(t)
	own := s.create(t, "/own", agentID, uid)
	node := attest.Selector{Type: "test", Value: "name:node"}
	alias := s.create(t, "/alias", serverID, node)
	viaAlias := s.create(t, "/via-alias", alias.SPIFFEID, uid)
	_, err := s.idx.Sync(t.Context())
	require.NoError(t, err)

	m := s.e.Of(agent(node))
	assert.Contains(t, m, own.ID)
	assert.Contains(t, m, viaAlias.ID)

	later := s.create(t, "/later", agentID, uid)
	_, err = s.idx.Sync(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, s.e.Of(agent(node)), later.ID, "cached for this generation")
	assert.NotContains(t, s.e.Of(agent()), viaAlias.ID, "other selectors: computed again")
	s.gen.Add(1)
	assert.Contains(t, s.e.Of(agent(node)), later.ID, "a new generation: computed again")
}

// Current reads the change feed up to now before it answers without what
// the agent holds or asks for; not otherwise. A read that finds changes
// moves the generation on; one that fails is an error.
func TestCurrent(t *testing.T) {
	s := newServer(t)
	own := s.create(t, "/own", agentID, uid)
	_, err := s.idx.Sync(t.Context())
	require.NoError(t, err)
	lacks := func(id string) func(map[string]registry.Entry) bool {
		return func(m map[string]registry.Entry) bool { _, ok := m[id]; return !ok }
	}

	reads := s.feed.reads.Load()
	m, err := s.e.Current(t.Context(), agent(), lacks(own.ID))
	require.NoError(t, err)
	assert.Contains(t, m, own.ID)
	assert.Equal(t, reads, s.feed.reads.Load(), "nothing lacking, nothing read")

	// Written through another server: this one has not read it yet.
	later := s.create(t, "/later", agentID, uid)
	gen := s.gen.Load()
	m, err = s.e.Current(t.Context(), agent(), lacks(later.ID))
	require.NoError(t, err)
	assert.Contains(t, m, later.ID, "read up to now first")
	assert.Greater(t, s.gen.Load(), gen, "the changes found move the generation on")

	// Still lacking after the read: the registry does not hold it.
	gen = s.gen.Load()
	m, err = s.e.Current(t.Context(), agent(), lacks("none"))
	require.NoError(t, err)
	assert.NotContains(t, m, "none")
	assert.Equal(t, gen, s.gen.Load(), "nothing found, the generation stays")

	s.feed.broken.Store(true)
	_, err = s.e.Current(t.Context(), agent(), lacks("none"))
	assert.ErrorContains(t, err, "reading the registry's changes: ")
	assert.ErrorContains(t, err, "the database is away")
}

// Callers that ask while a read of the change feed is under way share the
// next read, and a caller whose context ends while it waits for its turn
// gives up.
func TestCurrentSharesReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newServer(t)
		_, err := s.idx.Sync(t.Context())
		require.NoError(t, err)
		always := func(map[string]registry.Entry) bool { return true }

		// A read under way, held in the change feed.
		gate := make(chan struct{})
		s.feed.gate.Store(&gate)
		var wg sync.WaitGroup
		wg.Go(func() {
			_, err := s.e.Current(t.Context(), agent(), always)
			assert.NoError(t, err)
		})
		synctest.Wait()
		reads := s.feed.reads.Load()
		s.feed.gate.Store(nil)

		// A caller that gives up while it waits.
		ctx, cancel := context.WithCancel(t.Context())
		gaveUp := make(chan error, 1)
		go func() {
			_, err := s.e.Current(ctx, agent(), always)
			gaveUp <- err
		}()
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-gaveUp, context.Canceled)

		// Callers that ask meanwhile.
		const callers = 20
		for range callers {
			wg.Go(func() {
				_, err := s.e.Current(t.Context(), agent(), always)
				assert.NoError(t, err)
			})
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		assert.Equal(t, reads+1, s.feed.reads.Load(), "the callers that asked meanwhile share one read")
	})
}

// Invalidate drops the cached answer of the agents it names, without a
// new generation, and no other agent's: a change of one agent's entries
// costs the other agents nothing.
func TestInvalidate(t *testing.T) {
	s := newServer(t)
	other := registry.Agent{ID: spiffeid.RequireFromPath(td, "/spiffekit/agent/test/other"), AttestorType: "test"}
	s.create(t, "/own", agentID, uid)
	_, err := s.idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Len(t, s.e.Of(agent()), 1)
	assert.Empty(t, s.e.Of(other))

	later := s.create(t, "/later", agentID, uid)
	forOther := s.create(t, "/for-other", other.ID, uid)
	_, err = s.idx.Sync(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, s.e.Of(agent()), later.ID, "cached for this generation")
	s.e.Invalidate(agentID)
	assert.Contains(t, s.e.Of(agent()), later.ID, "invalidated: computed again")
	assert.NotContains(t, s.e.Of(other), forOther.ID, "another agent's answer is kept")
	s.e.Invalidate(other.ID)
	assert.Contains(t, s.e.Of(other), forOther.ID)

	// Past the bound of agents remembered, every answer is computed again.
	last := s.create(t, "/last", agentID, uid)
	_, err = s.idx.Sync(t.Context())
	require.NoError(t, err)
	assert.NotContains(t, s.e.Of(agent()), last.ID)
	many := make([]spiffeid.ID, 100001)
	for i := range many {
		many[i] = spiffeid.RequireFromPath(td, "/spiffekit/agent/test/n"+strconv.Itoa(i))
	}
	s.e.Invalidate(many...)
	assert.Contains(t, s.e.Of(agent()), last.ID, "forgotten: computed again")
}
