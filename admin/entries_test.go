package admin_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestEntryLifecycle(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	c := e.Client

	in := admintest.Entry("/web", "unix:uid:1000", "unix:gid:50")
	in.X509SVIDTTL = time.Hour
	in.JWTSVIDTTL = 5 * time.Minute
	in.DNSNames = []string{"web.example.org"}
	in.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")}
	in.Hint = "web"
	in.Downstream = true

	created, err := c.CreateEntry(ctx, in)
	require.NoError(t, err)
	assert.NotEmpty(t, created.ID)
	assert.Equal(t, int64(1), created.Revision)
	assert.False(t, created.CreatedAt.IsZero())
	assert.Equal(t, in.SPIFFEID, created.SPIFFEID)
	assert.Equal(t, in.ParentID, created.ParentID)
	assert.Equal(t, []attest.Selector{{Type: "unix", Value: "gid:50"}, {Type: "unix", Value: "uid:1000"}}, created.Selectors)
	assert.Equal(t, time.Hour, created.X509SVIDTTL)
	assert.Equal(t, 5*time.Minute, created.JWTSVIDTTL)
	assert.Equal(t, in.DNSNames, created.DNSNames)
	assert.Equal(t, in.FederatesWith, created.FederatesWith)
	assert.Equal(t, "web", created.Hint)
	assert.True(t, created.Downstream)

	stored, err := e.Store.Get(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, stored, created, "the client returns the entry exactly as stored")

	got, err := c.Entry(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created, got)

	upd := got
	upd.Hint = "web2"
	upd.DNSNames = nil
	updated, err := c.UpdateEntry(ctx, upd)
	require.NoError(t, err)
	assert.Equal(t, int64(2), updated.Revision)
	assert.Equal(t, "web2", updated.Hint)
	assert.Empty(t, updated.DNSNames)

	// Optimistic concurrency: the revision read first is stale now.
	_, err = c.UpdateEntry(ctx, got)
	require.ErrorIs(t, err, registry.ErrConflict)
	assert.True(t, strings.HasPrefix(err.Error(), "admin: "), err.Error())

	_, err = c.DeleteEntry(ctx, created.ID, 1)
	require.ErrorIs(t, err, registry.ErrConflict)

	deleted, err := c.DeleteEntry(ctx, created.ID, 2)
	require.NoError(t, err)
	assert.Equal(t, updated, deleted)

	_, err = c.Entry(ctx, created.ID)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = c.DeleteEntry(ctx, created.ID, 0)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = c.UpdateEntry(ctx, updated)
	require.ErrorIs(t, err, registry.ErrNotFound)
}

func TestEntryErrors(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	c := e.Client
	first, err := c.CreateEntry(ctx, admintest.Entry("/web", "unix:uid:1000"))
	require.NoError(t, err)

	_, err = c.CreateEntry(ctx, admintest.Entry("/web", "unix:uid:1000"))
	require.ErrorIs(t, err, registry.ErrAlreadyExists)

	_, err = c.CreateEntry(ctx, admintest.Entry("/web"))
	require.ErrorIs(t, err, registry.ErrInvalid, "an entry needs a selector")

	foreign := admintest.Entry("/web", "unix:uid:1")
	foreign.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/web")
	_, err = c.CreateEntry(ctx, foreign)
	require.ErrorIs(t, err, registry.ErrInvalid, "the server cannot sign for another trust domain")
	assert.Contains(t, err.Error(), `not in trust domain "example.org"`)

	foreignParent := admintest.Entry("/web", "unix:uid:2")
	foreignParent.ParentID = spiffeid.RequireFromString("spiffe://other.org/agent")
	_, err = c.CreateEntry(ctx, foreignParent)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: entry parent ID "spiffe://other.org/agent" is not in trust domain "example.org": registry: invalid argument`)

	upd := first
	upd.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/web")
	_, err = c.UpdateEntry(ctx, upd)
	require.ErrorIs(t, err, registry.ErrInvalid, "updates are checked too")
	assert.EqualError(t, err, `admin: entry SPIFFE ID "spiffe://other.org/web" is not in trust domain "example.org": registry: invalid argument`)

	_, err = c.UpdateEntry(ctx, registry.Entry{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: entry ID is required: registry: invalid argument")
	_, err = c.Entry(ctx, "")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: entry ID is required: registry: invalid argument")
	_, err = c.DeleteEntry(ctx, "", 0)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: entry ID is required: registry: invalid argument")
	_, err = c.Entry(ctx, "no-such-entry")
	require.ErrorIs(t, err, registry.ErrNotFound)

	_, err = c.ListEntries(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{Match: registry.MatchAny}})
	require.ErrorIs(t, err, registry.ErrInvalid, "a selector filter needs selectors")
}

func TestListEntriesFilters(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	c := e.Client
	other := spiffeid.RequireTrustDomainFromString("other.org")

	web, err := c.CreateEntry(ctx, admintest.Entry("/web", "unix:uid:1000", "unix:gid:10"))
	require.NoError(t, err)
	dbIn := admintest.Entry("/db", "unix:uid:2000")
	dbIn.ParentID = spiffeid.RequireFromPath(td, "/agent/node2")
	dbIn.FederatesWith = []spiffeid.TrustDomain{other}
	dbIn.Hint = "database"
	db, err := c.CreateEntry(ctx, dbIn)
	require.NoError(t, err)

	ids := func(entries []registry.Entry) []string {
		var out []string
		for _, e := range entries {
			out = append(out, e.SPIFFEID.Path())
		}
		return out
	}
	sel := func(m registry.MatchMode, ss ...string) *registry.SelectorFilter {
		f := &registry.SelectorFilter{Match: m}
		for _, s := range ss {
			p, err := attest.ParseSelector(s)
			require.NoError(t, err)
			f.Selectors = append(f.Selectors, p)
		}
		return f
	}
	tests := []struct {
		name   string
		filter registry.Filter
		want   []string
	}{
		{"all", registry.Filter{}, []string{"/web", "/db"}},
		{"by SPIFFE ID", registry.Filter{BySPIFFEID: db.SPIFFEID}, []string{"/db"}},
		{"by parent ID", registry.Filter{ByParentID: web.ParentID}, []string{"/web"}},
		{"by hint", registry.Filter{ByHint: "database"}, []string{"/db"}},
		{"selectors exact", registry.Filter{BySelectors: sel(registry.MatchExact, "unix:uid:1000")}, nil},
		{"selectors superset", registry.Filter{BySelectors: sel(registry.MatchSuperset, "unix:uid:1000")}, []string{"/web"}},
		{"selectors subset", registry.Filter{BySelectors: sel(registry.MatchSubset, "unix:uid:2000", "unix:uid:3")}, []string{"/db"}},
		{"selectors any", registry.Filter{BySelectors: sel(registry.MatchAny, "unix:uid:2000", "unix:gid:10")}, []string{"/web", "/db"}},
		{"federates with", registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{
			TrustDomains: []spiffeid.TrustDomain{other}, Match: registry.MatchAny}}, []string{"/db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.ListEntries(ctx, tt.filter)
			require.NoError(t, err)
			assert.ElementsMatch(t, tt.want, ids(got))
		})
	}
}

func TestListEntriesPages(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	const n = 1203 // more than two pages of the server's walk
	for i := range n {
		_, err := e.Store.Create(ctx, admintest.Entry("/w", "unix:uid:"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	got, err := e.Client.ListEntries(ctx, registry.Filter{})
	require.NoError(t, err)
	require.Len(t, got, n)
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.ID] = true
	}
	assert.Len(t, seen, n, "every entry exactly once")
}
