package index_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func id(path string) spiffeid.ID { return spiffeid.RequireFromString("spiffe://example.org" + path) }

func sel(typ, value string) attest.Selector { return attest.Selector{Type: typ, Value: value} }

func create(t testing.TB, s registry.Store, path, parent string, sels ...attest.Selector) registry.Entry {
	t.Helper()
	e, err := s.Create(t.Context(), registry.Entry{SPIFFEID: id(path), ParentID: id(parent), Selectors: sels})
	require.NoError(t, err)
	return e
}

func paths(es []registry.Entry) []string {
	out := []string{}
	for _, e := range es {
		out = append(out, e.SPIFFEID.Path())
	}
	slices.Sort(out)
	return out
}

func TestForWorkload(t *testing.T) {
	s := memstore.New(memstore.Config{})
	a, b, c := sel("unix", "uid:1"), sel("unix", "gid:2"), sel("k8s", "ns:prod")
	create(t, s, "/a", "/agent", a)
	create(t, s, "/ab", "/agent", a, b)
	create(t, s, "/abc", "/agent", a, b, c)
	create(t, s, "/c", "/agent", c)
	idx, err := index.New(t.Context(), s, index.Config{})
	require.NoError(t, err)
	assert.Equal(t, 4, idx.Len())

	tests := []struct {
		name   string
		caller []attest.Selector
		want   []string
	}{
		{"no selectors", nil, []string{}},
		{"unknown selector", []attest.Selector{sel("unix", "uid:9")}, []string{}},
		{"single", []attest.Selector{a}, []string{"/a"}},
		// Security rule: an entry whose selectors are a superset of the
		// caller's is not granted; {a, b} does not get /abc.
		{"superset entry not granted", []attest.Selector{a, b}, []string{"/a", "/ab"}},
		{"all", []attest.Selector{c, b, a}, []string{"/a", "/ab", "/abc", "/c"}},
		{"extra caller selectors are fine", []attest.Selector{a, sel("x", "y"), c}, []string{"/a", "/c"}},
		// Security rule: repeating a selector must not stand in for a missing
		// one; {a, a} does not get /ab.
		{"duplicates do not count twice", []attest.Selector{a, a}, []string{"/a"}},
		{"missing first selector", []attest.Selector{b, c}, []string{"/c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := idx.ForWorkload(tt.caller)
			assert.Equal(t, tt.want, paths(got))
			assert.True(t, slices.IsSortedFunc(got, func(x, y registry.Entry) int { return cmp.Compare(x.ID, y.ID) }))
		})
	}

	// Results are copies, with the entry's sorted selectors.
	got := idx.ForWorkload([]attest.Selector{a, b})
	require.Len(t, got, 2)
	stored, err := s.Get(t.Context(), got[0].ID)
	require.NoError(t, err)
	assert.Contains(t, got, stored)
	got[0].Selectors[0].Value = "changed"
	assert.Len(t, idx.ForWorkload([]attest.Selector{a, b}), 2)
}

func TestForAgent(t *testing.T) {
	s := memstore.New(memstore.Config{})
	server := id("/spire/server")
	node := sel("aws", "region:eu")
	create(t, s, "/alias/eu", server.Path(), node)
	create(t, s, "/alias/us", server.Path(), sel("aws", "region:us"))
	create(t, s, "/direct", "/agent/1", sel("unix", "uid:1"))
	create(t, s, "/other", "/agent/2", sel("unix", "uid:1"))
	create(t, s, "/via-alias", "/alias/eu", sel("unix", "uid:2"))
	create(t, s, "/via-us", "/alias/us", sel("unix", "uid:2"))
	create(t, s, "/nested", "/direct", sel("unix", "uid:3"))
	create(t, s, "/deeper", "/nested", sel("unix", "uid:4"))
	// A cycle: /loop-a is parented by /loop-b and vice versa, below /direct.
	create(t, s, "/loop-a", "/direct", sel("unix", "uid:5"))
	create(t, s, "/loop-b", "/loop-a", sel("unix", "uid:6"))
	create(t, s, "/loop-a", "/loop-b", sel("unix", "uid:7"))

	idx, err := index.New(t.Context(), s, index.Config{ServerID: server})
	require.NoError(t, err)
	got := idx.ForAgent(id("/agent/1"), []attest.Selector{node})
	assert.Equal(t, []string{"/deeper", "/direct", "/loop-a", "/loop-a", "/loop-b", "/nested", "/via-alias"}, paths(got))
	got = idx.ForAgent(id("/agent/1"), nil)
	assert.NotContains(t, paths(got), "/via-alias", "node selectors decide which aliases apply")
	assert.Equal(t, []string{"/other"}, paths(idx.ForAgent(id("/agent/2"), nil)))
	assert.Empty(t, idx.ForAgent(id("/agent/3"), nil))

	// Without a server ID, there are no aliases.
	idx, err = index.New(t.Context(), s, index.Config{})
	require.NoError(t, err)
	assert.NotContains(t, paths(idx.ForAgent(id("/agent/1"), []attest.Selector{node})), "/via-alias")
}

// TestIncremental checks the index against the store after random writes:
// the entries a workload gets from the index equal the store's subset query.
func TestIncremental(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(memstore.Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []attest.Selector{}
	for i := range 8 {
		pool = append(pool, sel("t", fmt.Sprint(i)))
	}
	randSels := func() []attest.Selector {
		n := 1 + rng.IntN(3)
		perm := rng.Perm(len(pool))[:n]
		out := make([]attest.Selector, n)
		for i, p := range perm {
			out[i] = pool[p]
		}
		return out
	}
	var live []registry.Entry
	write := func(i int) {
		switch op := rng.IntN(3); {
		case op == 0 || len(live) == 0:
			e, err := s.Create(ctx, registry.Entry{SPIFFEID: id(fmt.Sprintf("/w%d", i)), ParentID: id(fmt.Sprintf("/agent/%d", rng.IntN(3))), Selectors: randSels()})
			require.NoError(t, err)
			live = append(live, e)
		case op == 1:
			k := rng.IntN(len(live))
			e := live[k]
			e.Selectors = randSels()
			e, err := s.Update(ctx, e)
			require.NoError(t, err)
			live[k] = e
		default:
			k := rng.IntN(len(live))
			_, err := s.Delete(ctx, live[k].ID, 0)
			require.NoError(t, err)
			live = slices.Delete(live, k, k+1)
		}
	}
	for i := range 50 {
		write(i)
	}
	idx, err := index.New(ctx, s, index.Config{PageSize: 7})
	require.NoError(t, err)
	for round := range 20 {
		for i := range 10 {
			write(1000 + round*10 + i)
		}
		n, err := idx.Sync(ctx)
		require.NoError(t, err)
		assert.Equal(t, 10, n)
		head, err := s.Head(ctx)
		require.NoError(t, err)
		assert.Equal(t, head, idx.Seq())
		assert.Equal(t, len(live), idx.Len())
		caller := randSels()
		want, _, err := s.List(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: caller, Match: registry.MatchSubset}}, registry.Page{})
		require.NoError(t, err)
		if want == nil {
			want = []registry.Entry{}
		}
		assert.Equal(t, want, idx.ForWorkload(caller), "round %d", round)
		agent := id(fmt.Sprintf("/agent/%d", round%3))
		want, _, err = s.List(ctx, registry.Filter{ByParentID: agent}, registry.Page{})
		require.NoError(t, err)
		if want == nil {
			want = []registry.Entry{}
		}
		assert.Equal(t, want, idx.ForAgent(agent, nil))
		// Every entry, as the store lists them (by ID).
		want, _, err = s.List(ctx, registry.Filter{}, registry.Page{})
		require.NoError(t, err)
		if want == nil {
			want = []registry.Entry{}
		}
		assert.Equal(t, want, idx.All(), "round %d", round)
	}
}

// staleHead reports an old head, as a source would if writes landed between
// reading the head and listing the entries.
type staleHead struct{ registry.Store }

func (staleHead) Head(context.Context) (int64, error) { return 0, nil }

func TestBuildReplaysChangesSeenByList(t *testing.T) {
	ctx := t.Context()
	s := memstore.New(memstore.Config{})
	a := create(t, s, "/a", "/agent", sel("unix", "uid:1"))
	gone := create(t, s, "/gone", "/agent", sel("unix", "uid:1"))
	a.Selectors = []attest.Selector{sel("unix", "uid:2")}
	a, err := s.Update(ctx, a)
	require.NoError(t, err)
	_, err = s.Delete(ctx, gone.ID, 0)
	require.NoError(t, err)

	idx, err := index.New(ctx, staleHead{s}, index.Config{})
	require.NoError(t, err)
	assert.Equal(t, int64(4), idx.Seq())
	assert.Equal(t, []registry.Entry{a}, idx.ForWorkload([]attest.Selector{sel("unix", "uid:2")}))
	assert.Empty(t, idx.ForWorkload([]attest.Selector{sel("unix", "uid:1")}), "the old revision must not come back")
}

type failing struct {
	registry.Store
	head, list, changes error
}

func (f failing) Head(ctx context.Context) (int64, error) {
	if f.head != nil {
		return 0, f.head
	}
	return f.Store.Head(ctx)
}

func (f failing) List(ctx context.Context, fl registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	if f.list != nil {
		return nil, "", f.list
	}
	return f.Store.List(ctx, fl, p)
}

func (f failing) Changes(ctx context.Context, after int64, limit int) ([]registry.Event, error) {
	if f.changes != nil {
		return nil, f.changes
	}
	return f.Store.Changes(ctx, after, limit)
}

func TestNewErrors(t *testing.T) {
	boom := errors.New("boom")
	s := memstore.New(memstore.Config{})
	for _, src := range []failing{{Store: s, head: boom}, {Store: s, list: boom}, {Store: s, changes: boom}} {
		_, err := index.New(t.Context(), src, index.Config{})
		require.ErrorIs(t, err, boom)
	}
	_, err := index.New(t.Context(), s, index.Config{PageSize: -1})
	require.Error(t, err)
}

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := memstore.New(memstore.Config{})
		idx, err := index.New(ctx, s, index.Config{PollInterval: time.Minute})
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- idx.Run(ctx) }()

		// A write signals the index through the store's notifier.
		create(t, s, "/a", "/agent", sel("unix", "uid:1"))
		synctest.Wait()
		assert.Equal(t, 1, idx.Len())

		// A source without a notifier is polled.
		plain := failing{Store: s}
		polled, err := index.New(ctx, plain, index.Config{PollInterval: time.Minute})
		require.NoError(t, err)
		go func() { _ = polled.Run(ctx) }()
		synctest.Wait() // its first sync is done
		create(t, s, "/b", "/agent", sel("unix", "uid:1"))
		synctest.Wait()
		assert.Equal(t, 1, polled.Len())
		time.Sleep(time.Minute) // fake time inside the bubble
		synctest.Wait()
		assert.Equal(t, 2, polled.Len())

		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// TestUses checks the index's count of the selector kinds its entries
// use, by which an attestor learns which selectors it may skip: a kind is
// used while one entry has a selector of it, and only then.
func TestUses(t *testing.T) {
	s := memstore.New(memstore.Config{})
	hash := sel("unix", "sha256:"+strings.Repeat("a", 64))
	first := create(t, s, "/a", "/agent", sel("unix", "uid:1"), hash)
	idx, err := index.New(t.Context(), s, index.Config{})
	require.NoError(t, err)
	assert.True(t, idx.Uses("unix", "sha256"))
	assert.True(t, idx.Uses("unix", "uid"))
	assert.False(t, idx.Uses("unix", "path"))
	assert.False(t, idx.Uses("k8s", "sha256"), "a kind belongs to its type")

	// A second entry with the same selector, and another of the same kind.
	second := create(t, s, "/b", "/agent", hash)
	third := create(t, s, "/c", "/agent", sel("unix", "sha256:"+strings.Repeat("b", 64)), sel("k8s", "ns"))
	_, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.True(t, idx.Uses("k8s", "ns"), "a value without ':' is its own kind")

	for _, e := range []registry.Entry{first, second} {
		_, err := s.Delete(t.Context(), e.ID, 0)
		require.NoError(t, err)
		_, err = idx.Sync(t.Context())
		require.NoError(t, err)
		assert.True(t, idx.Uses("unix", "sha256"), "the third entry still has one")
	}
	assert.False(t, idx.Uses("unix", "uid"))
	_, err = s.Delete(t.Context(), third.ID, 0)
	require.NoError(t, err)
	_, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.False(t, idx.Uses("unix", "sha256"))
	assert.False(t, idx.Uses("k8s", "ns"))
}

// OnChange is told of each change Sync applies, once, after the index
// holds it: creates, updates (with the entry before and after) and
// deletes; not of the writes the index read when it was built.
func TestOnChange(t *testing.T) {
	s := memstore.New(memstore.Config{})
	u := sel("unix", "uid:1")
	create(t, s, "/before", "/agent", u)
	var idx *index.Index
	var told []registry.Event
	idx, err := index.New(t.Context(), s, index.Config{OnChange: func(ev registry.Event) {
		told = append(told, ev)
		assert.GreaterOrEqual(t, idx.Seq(), ev.Seq, "the index holds the change when it is told")
	}})
	require.NoError(t, err)
	n, err := idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Empty(t, told, "what the index was built with is not a change")

	e := create(t, s, "/e", "/agent/one", u)
	e.ParentID = id("/agent/two")
	e, err = s.Update(t.Context(), e)
	require.NoError(t, err)
	_, err = s.Delete(t.Context(), e.ID, e.Revision)
	require.NoError(t, err)
	n, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	require.Len(t, told, 3)
	assert.Equal(t, []registry.Op{registry.OpCreate, registry.OpUpdate, registry.OpDelete}, []registry.Op{told[0].Op, told[1].Op, told[2].Op})
	assert.Equal(t, id("/agent/one"), told[1].Before.ParentID)
	assert.Equal(t, id("/agent/two"), told[1].After.ParentID)
	assert.Nil(t, told[2].After)

	n, err = idx.Sync(t.Context())
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Len(t, told, 3, "each change is told once")
}
