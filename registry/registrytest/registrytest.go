package registrytest

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Run runs the contract suite against stores made by newStore, which must
// return a new, empty store each time it is called and release it with
// t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) registry.Store) {
	t.Run("CreateGet", func(t *testing.T) { testCreateGet(t, newStore(t)) })
	t.Run("CreateInvalid", func(t *testing.T) { testCreateInvalid(t, newStore(t)) })
	t.Run("CreateChosenID", func(t *testing.T) { testCreateChosenID(t, newStore(t)) })
	t.Run("Similar", func(t *testing.T) { testSimilar(t, newStore(t)) })
	t.Run("Update", func(t *testing.T) { testUpdate(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, newStore(t)) })
	t.Run("InvalidList", func(t *testing.T) { testInvalidList(t, newStore(t)) })
	t.Run("Pagination", func(t *testing.T) { testPagination(t, newStore(t)) })
	t.Run("ChangeFeed", func(t *testing.T) { testChangeFeed(t, newStore(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newStore(t)) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { testConcurrentUpdates(t, newStore(t)) })
	t.Run("CanceledContext", func(t *testing.T) { testCanceled(t, newStore(t)) })
	t.Run("LongestSelectors", func(t *testing.T) { testLongestSelectors(t, newStore(t)) })
	t.Run("Expiry", func(t *testing.T) { testExpiry(t, newStore(t)) })
}

// RunDurable checks that a store keeps its entries and change feed across a
// restart. open must open the same persistent store every time it is
// called; RunDurable closes each store it opens.
func RunDurable(t *testing.T, open func(t *testing.T) (registry.Store, io.Closer)) {
	ctx := t.Context()
	s, c := open(t)
	var want []registry.Entry
	for i := range 5 {
		want = append(want, mustCreate(t, s, entry(fmt.Sprintf("/w%d", i), "/agent", sel("unix", fmt.Sprintf("uid:%d", i)))))
	}
	updated := want[1]
	updated.Hint = "after restart"
	updated, err := s.Update(ctx, updated)
	require.NoError(t, err)
	want[1] = updated
	_, err = s.Delete(ctx, want[4].ID, 0)
	require.NoError(t, err)
	want = want[:4]
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Close())

	s, c = open(t)
	defer func() { require.NoError(t, c.Close()) }()
	got := listAll(t, s, registry.Filter{}, 0)
	sortByID(want)
	assert.Equal(t, want, got)
	again, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, head, again)
	evs, err := s.Changes(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, evs, 7)
	assert.Equal(t, registry.OpDelete, evs[6].Op)

	// The sequence continues after the restart.
	_, err = s.Create(ctx, entry("/later", "/agent", sel("unix", "uid:99")))
	require.NoError(t, err)
	evs, err = s.Changes(ctx, head, 100)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Greater(t, evs[0].Seq, head)
}

const td = "spiffe://example.org"

func id(path string) spiffeid.ID { return spiffeid.RequireFromString(td + path) }

func sel(typ, value string) attest.Selector { return attest.Selector{Type: typ, Value: value} }

func entry(path, parent string, sels ...attest.Selector) registry.Entry {
	return registry.Entry{SPIFFEID: id(path), ParentID: id(parent), Selectors: sels}
}

func mustCreate(t testing.TB, s registry.Store, e registry.Entry) registry.Entry {
	t.Helper()
	got, err := s.Create(t.Context(), e)
	require.NoError(t, err)
	return got
}

func listAll(t testing.TB, s registry.Store, f registry.Filter, size int) []registry.Entry {
	t.Helper()
	var all []registry.Entry
	token := ""
	for range 100000 {
		page, next, err := s.List(t.Context(), f, registry.Page{Token: token, Size: size})
		require.NoError(t, err)
		if size > 0 {
			require.LessOrEqual(t, len(page), size)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
	t.Fatal("List never returned an empty next token")
	return nil
}

func byID(a, b registry.Entry) int { return cmp.Compare(a.ID, b.ID) }

func sortByID(es []registry.Entry) { slices.SortFunc(es, byID) }

func ids(es []registry.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testCreateGet(t *testing.T, s registry.Store) {
	ctx := t.Context()
	in := registry.Entry{
		SPIFFEID:      id("/web"),
		ParentID:      id("/agent/node1"),
		Selectors:     []attest.Selector{sel("unix", "uid:1000"), sel("k8s", "ns:prod"), sel("unix", "gid:10")},
		X509SVIDTTL:   time.Hour,
		JWTSVIDTTL:    5 * time.Minute,
		DNSNames:      []string{"web.example.org", "*.web.example.org"},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("z.org"), spiffeid.RequireTrustDomainFromString("a.org")},
		Hint:          "internal",
		Downstream:    true,
	}
	before := time.Now().Add(-time.Second)
	got, err := s.Create(ctx, in)
	require.NoError(t, err)
	assert.True(t, registry.ValidEntryID(got.ID), "ID %q", got.ID)
	assert.Equal(t, int64(1), got.Revision)
	assert.Equal(t, got.CreatedAt, got.UpdatedAt)
	assert.WithinRange(t, got.CreatedAt, before, time.Now().Add(time.Second))
	assert.Equal(t, time.UTC, got.CreatedAt.Location())
	// Stores sort selectors and federated trust domains.
	assert.Equal(t, []attest.Selector{sel("k8s", "ns:prod"), sel("unix", "gid:10"), sel("unix", "uid:1000")}, got.Selectors)
	assert.Equal(t, "a.org", got.FederatesWith[0].Name())
	assert.Equal(t, in.DNSNames, got.DNSNames)
	assert.Equal(t, in.Hint, got.Hint)
	assert.True(t, got.Downstream)
	assert.Equal(t, in.X509SVIDTTL, got.X509SVIDTTL)
	assert.Equal(t, in.JWTSVIDTTL, got.JWTSVIDTTL)

	// The store kept no reference to the caller's slices, nor gave one out.
	in.Selectors[0].Value = "changed"
	got.DNSNames[0] = "changed.example.org"
	again, err := s.Get(ctx, got.ID)
	require.NoError(t, err)
	assert.Equal(t, "web.example.org", again.DNSNames[0])
	assert.Equal(t, sel("k8s", "ns:prod"), again.Selectors[0])
	got.DNSNames[0] = "web.example.org"
	assert.Equal(t, got, again)

	missing := registry.NewEntryID()
	_, err = s.Get(ctx, missing)
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.EqualError(t, err, `registry: entry "`+missing+`" not found`)
	_, err = s.Get(ctx, "not an id'; drop table entries; --")
	require.ErrorIs(t, err, registry.ErrNotFound)
}

// testCreateChosenID: an entry created with an ID of its caller's choosing
// keeps it; an ID that is taken is refused, whatever the entry.
func testCreateChosenID(t *testing.T, s registry.Store) {
	ctx := t.Context()
	chosen := registry.NewEntryID()
	e := entry("/chosen", "/agent", sel("unix", "uid:1"))
	e.ID = chosen
	got := mustCreate(t, s, e)
	assert.Equal(t, chosen, got.ID)
	assert.Equal(t, int64(1), got.Revision)
	stored, err := s.Get(ctx, chosen)
	require.NoError(t, err)
	assert.Equal(t, got, stored)
	before := head(t, s)

	other := entry("/other", "/agent", sel("unix", "uid:2"))
	other.ID = chosen
	_, err = s.Create(ctx, other)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	assert.Contains(t, err.Error(), "entry ID "+chosen+" is taken")
	stored, err = s.Get(ctx, chosen)
	require.NoError(t, err)
	assert.Equal(t, got, stored, "the entry holding the ID is unchanged")
	assert.Equal(t, before, head(t, s), "a refused create appends no event")

	// Deleted, its ID may be chosen again.
	_, err = s.Delete(ctx, chosen, 0)
	require.NoError(t, err)
	again := mustCreate(t, s, other)
	assert.Equal(t, chosen, again.ID)
	assert.Equal(t, id("/other"), again.SPIFFEID)
	assert.Equal(t, []registry.Entry{again}, listAll(t, s, registry.Filter{}, 0), "listed once")
	// Deleted and created again once more, between two listings.
	_, err = s.Delete(ctx, chosen, 0)
	require.NoError(t, err)
	again = mustCreate(t, s, other)
	assert.Equal(t, []registry.Entry{again}, listAll(t, s, registry.Filter{}, 1), "listed once")
}

func testCreateInvalid(t *testing.T, s registry.Store) {
	valid := entry("/w", "/agent", sel("unix", "uid:1"))
	tests := []struct {
		name   string
		mutate func(e *registry.Entry)
	}{
		{"ID too short", func(e *registry.Entry) { e.ID = "abc" }},
		{"ID in upper case", func(e *registry.Entry) { e.ID = strings.ToUpper(registry.NewEntryID()) }},
		{"ID as a UUID", func(e *registry.Entry) { e.ID = "4a7b3b2e-5f6e-4d1b-9a33-0c2f1e9d8b70" }},
		{"ID with a quote", func(e *registry.Entry) { e.ID = "'" + registry.NewEntryID()[1:] }},
		{"caller-chosen revision", func(e *registry.Entry) { e.Revision = 3 }},
		{"no SPIFFE ID", func(e *registry.Entry) { e.SPIFFEID = spiffeid.ID{} }},
		{"SPIFFE ID without path", func(e *registry.Entry) { e.SPIFFEID = id("") }},
		{"no parent", func(e *registry.Entry) { e.ParentID = spiffeid.ID{} }},
		{"no selectors", func(e *registry.Entry) { e.Selectors = nil }},
		{"duplicate selector", func(e *registry.Entry) { e.Selectors = append(e.Selectors, e.Selectors[0]) }},
		{"selector type with colon", func(e *registry.Entry) { e.Selectors[0].Type = "a:b" }},
		{"empty selector value", func(e *registry.Entry) { e.Selectors[0].Value = "" }},
		{"too many selectors", func(e *registry.Entry) {
			e.Selectors = nil
			for i := range registry.MaxSelectors + 1 {
				e.Selectors = append(e.Selectors, sel("t", fmt.Sprint(i)))
			}
		}},
		{"negative X509 TTL", func(e *registry.Entry) { e.X509SVIDTTL = -time.Second }},
		{"negative JWT TTL", func(e *registry.Entry) { e.JWTSVIDTTL = -time.Second }},
		{"bad DNS name", func(e *registry.Entry) { e.DNSNames = []string{"bad_name"} }},
		{"hint too long", func(e *registry.Entry) { e.Hint = string(make([]byte, registry.MaxHintLen+1)) }},
		{"empty federated trust domain", func(e *registry.Entry) { e.FederatesWith = []spiffeid.TrustDomain{{}} }},
		{"expiry at the epoch", func(e *registry.Entry) { e.ExpiresAt = time.Unix(0, 0) }},
		{"expiry before the epoch", func(e *registry.Entry) { e.ExpiresAt = time.Unix(-1, 0) }},
		{"expiry past year 9999", func(e *registry.Entry) { e.ExpiresAt = registry.MaxExpiry.Add(time.Second) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid.Clone()
			tt.mutate(&e)
			_, err := s.Create(t.Context(), e)
			require.ErrorIs(t, err, registry.ErrInvalid)
		})
	}
	all := listAll(t, s, registry.Filter{}, 0)
	assert.Empty(t, all, "a rejected create must store nothing")
	head, err := s.Head(t.Context())
	require.NoError(t, err)
	assert.Zero(t, head, "a rejected create must append no event")
}

func testSimilar(t *testing.T, s registry.Store) {
	ctx := t.Context()
	a := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1"), sel("unix", "gid:1")))
	// The same selectors in another order make the same entry.
	_, err := s.Create(ctx, entry("/w", "/agent", sel("unix", "gid:1"), sel("unix", "uid:1")))
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	// A different parent, SPIFFE ID or selector set is a different entry.
	mustCreate(t, s, entry("/w", "/agent2", sel("unix", "uid:1"), sel("unix", "gid:1")))
	mustCreate(t, s, entry("/w2", "/agent", sel("unix", "uid:1"), sel("unix", "gid:1")))
	b := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	// Updating b into a copy of a is refused too.
	b.Selectors = a.Selectors
	_, err = s.Update(ctx, b)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	// Once a is deleted, its shape is free again.
	_, err = s.Delete(ctx, a.ID, 0)
	require.NoError(t, err)
	_, err = s.Update(ctx, b)
	require.NoError(t, err)
}

func testUpdate(t *testing.T, s registry.Store) {
	ctx := t.Context()
	e := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	changed := e.Clone()
	changed.Hint = "v2"
	changed.Selectors = []attest.Selector{sel("unix", "uid:2"), sel("k8s", "ns:a")}
	changed.CreatedAt = time.Unix(0, 0) // ignored: stores keep the creation time
	v2, err := s.Update(ctx, changed)
	require.NoError(t, err)
	assert.Equal(t, int64(2), v2.Revision)
	assert.Equal(t, e.ID, v2.ID)
	assert.Equal(t, e.CreatedAt, v2.CreatedAt)
	assert.False(t, v2.UpdatedAt.Before(e.UpdatedAt))
	assert.Equal(t, []attest.Selector{sel("k8s", "ns:a"), sel("unix", "uid:2")}, v2.Selectors)
	got, err := s.Get(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, v2, got)

	// Optimistic concurrency: an update based on revision 1 lost the race.
	stale := e.Clone()
	stale.Hint = "stale"
	_, err = s.Update(ctx, stale)
	require.ErrorIs(t, err, registry.ErrConflict)

	missing := v2.Clone()
	missing.ID = registry.NewEntryID()
	_, err = s.Update(ctx, missing)
	require.ErrorIs(t, err, registry.ErrNotFound)

	bad := v2.Clone()
	bad.Selectors = nil
	_, err = s.Update(ctx, bad)
	require.ErrorIs(t, err, registry.ErrInvalid)

	got, err = s.Get(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, v2, got, "failed updates change nothing")
}

func testDelete(t *testing.T, s registry.Store) {
	ctx := t.Context()
	e := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	_, err := s.Delete(ctx, e.ID, 7)
	require.ErrorIs(t, err, registry.ErrConflict)
	_, err = s.Delete(ctx, registry.NewEntryID(), 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.Delete(ctx, "bogus", 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	got, err := s.Delete(ctx, e.ID, 1)
	require.NoError(t, err)
	assert.Equal(t, e, got)
	_, err = s.Get(ctx, e.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.Delete(ctx, e.ID, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = s.Update(ctx, e)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func testFilters(t *testing.T, s registry.Store) {
	a, b := sel("unix", "uid:1"), sel("unix", "gid:2")
	c, d := sel("k8s", "ns:prod"), sel("k8s", "sa:web")
	tdA := spiffeid.RequireTrustDomainFromString("a.org")
	tdB := spiffeid.RequireTrustDomainFromString("b.org")
	tdC := spiffeid.RequireTrustDomainFromString("c.org")
	mk := func(path, parent, hint string, fed []spiffeid.TrustDomain, sels ...attest.Selector) registry.Entry {
		e := entry(path, parent, sels...)
		e.Hint, e.FederatesWith = hint, fed
		return mustCreate(t, s, e)
	}
	eA := mk("/a", "/agent1", "", nil, a)
	eAB := mk("/ab", "/agent1", "h", []spiffeid.TrustDomain{tdA}, a, b)
	eABC := mk("/abc", "/agent2", "", []spiffeid.TrustDomain{tdA, tdB}, a, b, c)
	eCD := mk("/cd", "/agent2", "h", []spiffeid.TrustDomain{tdC}, c, d)
	eAB2 := mk("/ab", "/agent2", "", nil, a, b)

	sf := func(m registry.MatchMode, sels ...attest.Selector) *registry.SelectorFilter {
		return &registry.SelectorFilter{Selectors: sels, Match: m}
	}
	ff := func(m registry.MatchMode, tds ...spiffeid.TrustDomain) *registry.FederatesWithFilter {
		return &registry.FederatesWithFilter{TrustDomains: tds, Match: m}
	}
	tests := []struct {
		name   string
		filter registry.Filter
		want   []registry.Entry
	}{
		{"none", registry.Filter{}, []registry.Entry{eA, eAB, eABC, eCD, eAB2}},
		{"by SPIFFE ID", registry.Filter{BySPIFFEID: id("/ab")}, []registry.Entry{eAB, eAB2}},
		{"by parent", registry.Filter{ByParentID: id("/agent1")}, []registry.Entry{eA, eAB}},
		{"by SPIFFE ID and parent", registry.Filter{BySPIFFEID: id("/ab"), ByParentID: id("/agent2")}, []registry.Entry{eAB2}},
		{"by hint", registry.Filter{ByHint: "h"}, []registry.Entry{eAB, eCD}},
		{"selectors exact", registry.Filter{BySelectors: sf(registry.MatchExact, b, a)}, []registry.Entry{eAB, eAB2}},
		{"selectors exact, no match", registry.Filter{BySelectors: sf(registry.MatchExact, a, c)}, nil},
		// Subset: what a workload with exactly {a, b, d} may get. {a, b, c}
		// is not granted: it needs c, which the workload lacks.
		{"selectors subset", registry.Filter{BySelectors: sf(registry.MatchSubset, a, b, d)}, []registry.Entry{eA, eAB, eAB2}},
		{"selectors subset, single", registry.Filter{BySelectors: sf(registry.MatchSubset, b)}, nil},
		{"selectors superset", registry.Filter{BySelectors: sf(registry.MatchSuperset, a, b)}, []registry.Entry{eAB, eABC, eAB2}},
		{"selectors superset, single", registry.Filter{BySelectors: sf(registry.MatchSuperset, c)}, []registry.Entry{eABC, eCD}},
		{"selectors any", registry.Filter{BySelectors: sf(registry.MatchAny, b, d)}, []registry.Entry{eAB, eABC, eCD, eAB2}},
		{"selectors with duplicates in filter", registry.Filter{BySelectors: sf(registry.MatchExact, a, a)}, []registry.Entry{eA}},
		{"selectors and parent", registry.Filter{ByParentID: id("/agent2"), BySelectors: sf(registry.MatchSuperset, a)}, []registry.Entry{eABC, eAB2}},
		{"federates exact", registry.Filter{ByFederatesWith: ff(registry.MatchExact, tdA)}, []registry.Entry{eAB}},
		{"federates subset", registry.Filter{ByFederatesWith: ff(registry.MatchSubset, tdA, tdC)}, []registry.Entry{eAB, eCD}},
		{"federates superset", registry.Filter{ByFederatesWith: ff(registry.MatchSuperset, tdA)}, []registry.Entry{eAB, eABC}},
		{"federates any", registry.Filter{ByFederatesWith: ff(registry.MatchAny, tdB, tdC)}, []registry.Entry{eABC, eCD}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.Clone(tt.want)
			sortByID(want)
			for _, size := range []int{0, 1, 2} {
				got := listAll(t, s, tt.filter, size)
				assert.Equal(t, ids(want), ids(got), "page size %d", size)
				if size == 0 && len(want) > 0 {
					assert.Equal(t, want, got)
				}
			}
		})
	}
}

func testInvalidList(t *testing.T, s registry.Store) {
	mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	tests := []struct {
		name   string
		filter registry.Filter
		page   registry.Page
	}{
		{"negative size", registry.Filter{}, registry.Page{Size: -1}},
		{"malformed token", registry.Filter{}, registry.Page{Token: "x' OR 1=1 --"}},
		{"empty selector filter", registry.Filter{BySelectors: &registry.SelectorFilter{}}, registry.Page{}},
		{"invalid selector", registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: []attest.Selector{{Type: "a:b", Value: "v"}}}}, registry.Page{}},
		{"unknown match mode", registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: []attest.Selector{sel("a", "b")}, Match: 99}}, registry.Page{}},
		{"empty federates filter", registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{}}, registry.Page{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := s.List(t.Context(), tt.filter, tt.page)
			require.ErrorIs(t, err, registry.ErrInvalid)
		})
	}
}

func testPagination(t *testing.T, s registry.Store) {
	ctx := t.Context()
	var stable []registry.Entry
	for i := range 30 {
		stable = append(stable, mustCreate(t, s, entry(fmt.Sprintf("/s%d", i), "/agent", sel("unix", "uid:1"))))
	}
	var doomed []registry.Entry
	for i := range 10 {
		doomed = append(doomed, mustCreate(t, s, entry(fmt.Sprintf("/d%d", i), "/agent", sel("unix", "uid:1"))))
	}
	// Walk the pages while other entries come and go.
	seen := map[string]int{}
	token := ""
	for page := 0; ; page++ {
		got, next, err := s.List(ctx, registry.Filter{}, registry.Page{Token: token, Size: 4})
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), 4)
		require.True(t, slices.IsSortedFunc(got, byID))
		for _, e := range got {
			seen[e.ID]++
		}
		if page < len(doomed) {
			_, err = s.Delete(ctx, doomed[page].ID, 0)
			require.NoError(t, err)
			mustCreate(t, s, entry(fmt.Sprintf("/n%d", page), "/agent", sel("unix", "uid:1")))
		}
		if next == "" {
			break
		}
		token = next
	}
	for _, e := range stable {
		assert.Equal(t, 1, seen[e.ID], "entry %s", e.SPIFFEID)
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "entry %s returned %d times", id, n)
	}
}

func testChangeFeed(t *testing.T, s registry.Store) {
	ctx := t.Context()
	head, err := s.Head(ctx)
	require.NoError(t, err)
	require.Zero(t, head)
	evs, err := s.Changes(ctx, 0, 10)
	require.NoError(t, err)
	require.Empty(t, evs)
	_, err = s.Changes(ctx, 0, 0)
	require.ErrorIs(t, err, registry.ErrInvalid)

	a := mustCreate(t, s, entry("/a", "/agent", sel("unix", "uid:1")))
	b := mustCreate(t, s, entry("/b", "/agent", sel("unix", "uid:2")))
	a2 := a.Clone()
	a2.Hint = "two"
	a2, err = s.Update(ctx, a2)
	require.NoError(t, err)
	_, err = s.Delete(ctx, b.ID, 0)
	require.NoError(t, err)
	// Failed writes append nothing.
	_, err = s.Update(ctx, a)
	require.ErrorIs(t, err, registry.ErrConflict)

	evs, err = s.Changes(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, evs, 4)
	for i := 1; i < len(evs); i++ {
		assert.Greater(t, evs[i].Seq, evs[i-1].Seq)
	}
	assert.Positive(t, evs[0].Seq)
	assert.Equal(t, []registry.Op{registry.OpCreate, registry.OpCreate, registry.OpUpdate, registry.OpDelete},
		[]registry.Op{evs[0].Op, evs[1].Op, evs[2].Op, evs[3].Op})
	assert.Nil(t, evs[0].Before)
	assert.Equal(t, a, *evs[0].After)
	assert.Equal(t, a.ID, evs[0].EntryID)
	assert.Equal(t, b, evs[1].Entry())
	assert.Equal(t, a, *evs[2].Before)
	assert.Equal(t, a2, *evs[2].After)
	assert.Equal(t, a2, evs[2].Entry())
	assert.Equal(t, b, *evs[3].Before)
	assert.Nil(t, evs[3].After)
	assert.Equal(t, b, evs[3].Entry())
	assert.Equal(t, b.ID, evs[3].EntryID)

	head, err = s.Head(ctx)
	require.NoError(t, err)
	assert.Equal(t, evs[3].Seq, head)

	// Reading from the middle, with a limit.
	rest, err := s.Changes(ctx, evs[1].Seq, 1)
	require.NoError(t, err)
	require.Len(t, rest, 1)
	assert.Equal(t, evs[2].Seq, rest[0].Seq)
	rest, err = s.Changes(ctx, head, 10)
	require.NoError(t, err)
	assert.Empty(t, rest)

	// Events are copies.
	evs[0].After.Selectors[0].Value = "changed"
	again, err := s.Changes(ctx, 0, 1)
	require.NoError(t, err)
	assert.Equal(t, "uid:1", again[0].After.Selectors[0].Value)
}

func testConcurrentWriters(t *testing.T, s registry.Store) {
	ctx := t.Context()
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each*2)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				e, err := s.Create(ctx, entry(fmt.Sprintf("/w%d/%d", w, i), "/agent", sel("unix", "uid:1")))
				if err != nil {
					errs <- err
					continue
				}
				e.Hint = "updated"
				if _, err := s.Update(ctx, e); err != nil {
					errs <- err
				}
				if _, _, err := s.List(ctx, registry.Filter{ByHint: "updated"}, registry.Page{Size: 5}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	all := listAll(t, s, registry.Filter{ByHint: "updated"}, 7)
	assert.Len(t, all, writers*each)

	// The feed holds every write, in order, and replaying it rebuilds the store.
	var evs []registry.Event
	after := int64(0)
	for {
		page, err := s.Changes(ctx, after, 13)
		require.NoError(t, err)
		if len(page) == 0 {
			break
		}
		evs = append(evs, page...)
		after = page[len(page)-1].Seq
	}
	require.Len(t, evs, 2*writers*each)
	replay := map[string]registry.Entry{}
	for i, ev := range evs {
		if i > 0 {
			require.Greater(t, ev.Seq, evs[i-1].Seq)
		}
		switch ev.Op {
		case registry.OpCreate:
			_, exists := replay[ev.EntryID]
			require.False(t, exists)
		case registry.OpUpdate:
			require.Equal(t, replay[ev.EntryID], *ev.Before, "an update's before-image is the previous event's after-image")
		}
		replay[ev.EntryID] = *ev.After
	}
	sortByID(all)
	var replayed []registry.Entry
	for _, e := range replay {
		replayed = append(replayed, e)
	}
	sortByID(replayed)
	assert.Equal(t, all, replayed)
}

func testConcurrentUpdates(t *testing.T, s registry.Store) {
	ctx := t.Context()
	e := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	const racers = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, conflicts := 0, 0
	for i := range racers {
		wg.Go(func() {
			c := e.Clone()
			c.Hint = fmt.Sprint(i)
			_, err := s.Update(ctx, c)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case assert.ErrorIs(t, err, registry.ErrConflict):
				conflicts++
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 1, wins, "exactly one update of revision 1 may win")
	assert.Equal(t, racers-1, conflicts)
	got, err := s.Get(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(2), got.Revision)
}

func testCanceled(t *testing.T, s registry.Store) {
	e := mustCreate(t, s, entry("/w", "/agent", sel("unix", "uid:1")))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Create(ctx, entry("/x", "/agent", sel("unix", "uid:1")))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Update(ctx, e)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Delete(ctx, e.ID, 0)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Get(ctx, e.ID)
	assert.ErrorIs(t, err, context.Canceled)
	_, _, err = s.List(ctx, registry.Filter{}, registry.Page{})
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Changes(ctx, 0, 1)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Head(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	got, err := s.Get(t.Context(), e.ID)
	require.NoError(t, err)
	assert.Equal(t, e, got)
}

// testExpiry: an entry's expiry is kept to the second, in UTC, through
// create, get, list, update, the change feed and delete; an update can
// clear it; a past expiry is stored (the store has no policy on time).
func testExpiry(t *testing.T, s registry.Store) {
	ctx := t.Context()
	at := time.Date(2031, 5, 6, 7, 8, 9, 987654321, time.FixedZone("east", 3*3600))
	in := entry("/expiring", "/agent", sel("unix", "uid:1"))
	in.ExpiresAt = at
	got := mustCreate(t, s, in)
	want := time.Date(2031, 5, 6, 4, 8, 9, 0, time.UTC)
	assert.Equal(t, want, got.ExpiresAt, "UTC, to the second")
	assert.Equal(t, time.UTC, got.ExpiresAt.Location())
	again, err := s.Get(ctx, got.ID)
	require.NoError(t, err)
	assert.Equal(t, got, again)
	assert.Equal(t, []registry.Entry{got}, listAll(t, s, registry.Filter{}, 0))

	plain := mustCreate(t, s, entry("/plain", "/agent", sel("unix", "uid:2")))
	assert.True(t, plain.ExpiresAt.IsZero(), "no expiry unless one is given")

	// Changed, then cleared, by updates; the feed carries it.
	got.ExpiresAt = registry.MaxExpiry
	v2, err := s.Update(ctx, got)
	require.NoError(t, err)
	assert.Equal(t, registry.MaxExpiry, v2.ExpiresAt)
	v2.ExpiresAt = time.Time{}
	v3, err := s.Update(ctx, v2)
	require.NoError(t, err)
	assert.True(t, v3.ExpiresAt.IsZero())
	stored, err := s.Get(ctx, got.ID)
	require.NoError(t, err)
	assert.True(t, stored.ExpiresAt.IsZero(), "a cleared expiry stays cleared")
	evs, err := s.Changes(ctx, 0, 100)
	require.NoError(t, err)
	require.Len(t, evs, 4)
	assert.Equal(t, want, evs[0].After.ExpiresAt)
	assert.Equal(t, registry.MaxExpiry, evs[2].After.ExpiresAt)
	assert.Equal(t, registry.MaxExpiry, evs[3].Before.ExpiresAt)
	assert.True(t, evs[3].After.ExpiresAt.IsZero())

	// The store keeps an expiry that has passed: the index does not serve
	// the entry, and a server's pruner deletes it.
	past := entry("/past", "/agent", sel("unix", "uid:3"))
	past.ExpiresAt = registry.MinExpiry
	p := mustCreate(t, s, past)
	assert.Equal(t, registry.MinExpiry, p.ExpiresAt)
	assert.True(t, p.Expired(time.Now()))
	deleted, err := s.Delete(ctx, p.ID, p.Revision)
	require.NoError(t, err)
	assert.Equal(t, registry.MinExpiry, deleted.ExpiresAt)
}
