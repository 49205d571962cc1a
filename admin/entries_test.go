package admin_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestEntryLifecycle(t *testing.T) {
	e := start(t)
	ctx := t.Context()
	c := e.client

	in := entry("/web", "unix:uid:1000", "unix:gid:50")
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

	stored, err := e.store.Get(ctx, created.ID)
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
	e := start(t)
	ctx := t.Context()
	c := e.client
	first, err := c.CreateEntry(ctx, entry("/web", "unix:uid:1000"))
	require.NoError(t, err)

	_, err = c.CreateEntry(ctx, entry("/web", "unix:uid:1000"))
	require.ErrorIs(t, err, registry.ErrAlreadyExists)

	_, err = c.CreateEntry(ctx, entry("/web"))
	require.ErrorIs(t, err, registry.ErrInvalid, "an entry needs a selector")

	foreign := entry("/web", "unix:uid:1")
	foreign.SPIFFEID = spiffeid.RequireFromString("spiffe://other.org/web")
	_, err = c.CreateEntry(ctx, foreign)
	require.ErrorIs(t, err, registry.ErrInvalid, "the server cannot sign for another trust domain")
	assert.Contains(t, err.Error(), `not in trust domain "example.org"`)

	foreignParent := entry("/web", "unix:uid:2")
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
	e := start(t)
	ctx := t.Context()
	c := e.client
	other := spiffeid.RequireTrustDomainFromString("other.org")

	web, err := c.CreateEntry(ctx, entry("/web", "unix:uid:1000", "unix:gid:10"))
	require.NoError(t, err)
	dbIn := entry("/db", "unix:uid:2000")
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
	e := start(t)
	ctx := t.Context()
	const n = 1203 // more than two pages of the server's walk
	for i := range n {
		_, err := e.store.Create(ctx, entry("/w", "unix:uid:"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	got, err := e.client.ListEntries(ctx, registry.Filter{})
	require.NoError(t, err)
	require.Len(t, got, n)
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.ID] = true
	}
	assert.Len(t, seen, n, "every entry exactly once")
}

// TestMalformedRequests sends what the Client never sends: each must be
// refused with a JSON error and the right status, never a 500.
func TestMalformedRequests(t *testing.T) {
	e := start(t)
	created, err := e.client.CreateEntry(t.Context(), entry("/web", "unix:uid:1"))
	require.NoError(t, err)
	big := strings.Repeat(" ", 3<<20) + "{}"
	tests := []struct {
		name, method, target, body string
		status                     int
		contains                   string
	}{
		{"not JSON", "POST", "/v1/entries", "{", http.StatusBadRequest, "malformed request body"},
		{"unknown field", "POST", "/v1/entries", `{"spiffe_id":"spiffe://example.org/a","nope":1}`, http.StatusBadRequest, "unknown field"},
		// Entries grant no power: flags that claimed to are refused, not ignored.
		{"admin flag", "POST", "/v1/entries", `{"spiffe_id":"spiffe://example.org/a","admin":true}`, http.StatusBadRequest, `unknown field \"admin\"`},
		{"two values", "POST", "/v1/entries", `{} {}`, http.StatusBadRequest, "more than one JSON value"},
		{"body too large", "POST", "/v1/entries", big, http.StatusRequestEntityTooLarge, "larger than"},
		{"bad SPIFFE ID", "POST", "/v1/entries", `{"spiffe_id":"http://x"}`, http.StatusBadRequest, "spiffe_id"},
		{"bad parent ID", "POST", "/v1/entries", `{"parent_id":"x"}`, http.StatusBadRequest, "parent_id"},
		{"bad x509 TTL", "POST", "/v1/entries", `{"x509_svid_ttl":"soon"}`, http.StatusBadRequest, "x509_svid_ttl"},
		{"bad JWT TTL", "POST", "/v1/entries", `{"jwt_svid_ttl":"1"}`, http.StatusBadRequest, "jwt_svid_ttl"},
		{"bad federated TD", "POST", "/v1/entries", `{"federates_with":["A B"]}`, http.StatusBadRequest, "federates_with"},
		{"body ID differs from path", "PUT", "/v1/entries/" + created.ID, `{"id":"other","spiffe_id":"spiffe://example.org/web","parent_id":"spiffe://example.org/agent/node1","selectors":[{"type":"unix","value":"uid:1"}],"revision":1}`, http.StatusBadRequest, "differs"},
		{"bad revision", "DELETE", "/v1/entries/" + created.ID + "?revision=x", "", http.StatusBadRequest, "revision"},
		{"negative revision", "DELETE", "/v1/entries/" + created.ID + "?revision=-1", "", http.StatusBadRequest, "revision"},
		{"filter bad SPIFFE ID", "GET", "/v1/entries?spiffe_id=x", "", http.StatusBadRequest, "spiffe_id"},
		{"filter bad parent ID", "GET", "/v1/entries?parent_id=x", "", http.StatusBadRequest, "parent_id"},
		{"filter bad selector", "GET", "/v1/entries?selector=nocolon", "", http.StatusBadRequest, "selector"},
		{"filter bad match", "GET", "/v1/entries?selector=unix:uid:1&selector_match=most", "", http.StatusBadRequest, "match mode"},
		{"filter bad TD", "GET", "/v1/entries?federates_with=A%20B", "", http.StatusBadRequest, "federates_with"},
		{"filter bad TD match", "GET", "/v1/entries?federates_with=a.org&federates_with_match=x", "", http.StatusBadRequest, "match mode"},
		{"filter too many selectors", "GET", "/v1/entries?" + strings.Repeat("selector=a:b&", registry.MaxSelectors+1), "", http.StatusBadRequest, "at most"},
		{"filter too many TDs", "GET", "/v1/entries?" + strings.Repeat("federates_with=a.org&", registry.MaxFederatesWith+1), "", http.StatusBadRequest, "at most"},
		{"filter long hint", "GET", "/v1/entries?hint=" + strings.Repeat("h", registry.MaxHintLen+1), "", http.StatusBadRequest, "hint"},
		{"token not JSON", "POST", "/v1/tokens", "[", http.StatusBadRequest, "malformed"},
		{"token bad TTL", "POST", "/v1/tokens", `{"ttl":"forever"}`, http.StatusBadRequest, "ttl"},
		{"token bad agent ID", "POST", "/v1/tokens", `{"ttl":"1m","agent_id":"x"}`, http.StatusBadRequest, "agent_id"},
		{"bundle bad format", "GET", "/v1/bundle?format=der", "", http.StatusBadRequest, "unknown bundle format"},
		{"federated bad TD", "GET", "/v1/federation/bundles/A%20B", "", http.StatusBadRequest, "trust domain"},
		{"federated set bad TD", "PUT", "/v1/federation/bundles/A%20B", "{}", http.StatusBadRequest, "trust domain"},
		{"federated delete bad TD", "DELETE", "/v1/federation/bundles/A%20B", "", http.StatusBadRequest, "trust domain"},
		{"federated set too large", "PUT", "/v1/federation/bundles/other.org", big, http.StatusRequestEntityTooLarge, "larger than"},
		{"agent ID missing", "DELETE", "/v1/agents", "", http.StatusBadRequest, "required"},
		{"agent ID malformed", "POST", "/v1/agents/ban?id=nope", "", http.StatusBadRequest, "agent ID"},
		{"agent list ID malformed", "GET", "/v1/agents?id=nope", "", http.StatusBadRequest, "agent ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body *strings.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			var status int
			var text string
			if body == nil {
				status, text = raw(t, e.path, tt.method, tt.target, nil)
			} else {
				status, text = raw(t, e.path, tt.method, tt.target, body)
			}
			assert.Equal(t, tt.status, status, text)
			assert.Contains(t, text, tt.contains)
			assert.Contains(t, text, `"error":`)
		})
	}
}
