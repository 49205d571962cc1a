package selection

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	agent  = spiffeid.RequireFromPath(td, "/agent")
	other  = spiffeid.RequireFromPath(td, "/other")
	uid    = attest.Selector{Type: "unix", Value: "uid:1000"}
	gid    = attest.Selector{Type: "unix", Value: "gid:1000"}
	caller = []attest.Selector{gid, uid}
)

// newIndex indexes the entries.
func newIndex(t *testing.T, entries ...registry.Entry) *index.Index {
	t.Helper()
	store := memstore.New(memstore.Config{})
	for _, e := range entries {
		_, err := store.Create(t.Context(), e)
		require.NoError(t, err)
	}
	idx, err := index.New(t.Context(), store, index.Config{})
	require.NoError(t, err)
	return idx
}

func entry(path string, parent spiffeid.ID, hint string, sels ...attest.Selector) registry.Entry {
	return registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, path), ParentID: parent, Hint: hint, Selectors: sels}
}

func paths(es []registry.Entry) []string {
	out := make([]string, len(es))
	for k, e := range es {
		out[k] = e.SPIFFEID.Path()
	}
	return out
}

// A caller gets its entries by SPIFFE ID, those of the parent only when
// one is set, and one entry per hint.
func TestForCaller(t *testing.T) {
	idx := newIndex(t,
		entry("/web", agent, "", uid),
		entry("/api", agent, "", gid),
		entry("/db", other, "", uid),
		entry("/none", agent, "", attest.Selector{Type: "unix", Value: "uid:0"}),
		entry("/web2", agent, "web", uid),
		entry("/web3", agent, "web", uid),
	)
	log := &logtest.Buffer{}
	got := paths(ForCaller(idx, caller, spiffeid.ID{}, log.Logger()))
	require.Equal(t, []string{"/api", "/db", "/web", "/web2"}, got)
	require.True(t, log.Contains("its hint is taken"))
	require.True(t, log.Contains("/web3"))

	got = paths(ForCaller(idx, caller, agent, log.Logger()))
	require.Equal(t, []string{"/api", "/web", "/web2"}, got)
	require.Empty(t, ForCaller(idx, []attest.Selector{{Type: "unix", Value: "uid:1"}}, spiffeid.ID{}, log.Logger()))
}

// Served: every entry, or the parent's (not those of nested parents), at
// most limit, the first by ID.
func TestServed(t *testing.T) {
	idx := newIndex(t,
		entry("/a", agent, "", uid),
		entry("/b", agent, "", uid),
		entry("/c", other, "", uid),
		entry("/nested", spiffeid.RequireFromPath(td, "/a"), "", uid),
	)
	require.Len(t, Served(idx, spiffeid.ID{}, 0), 4)
	require.ElementsMatch(t, []string{"/a", "/b"}, paths(Served(idx, agent, 0)))
	limited := Served(idx, spiffeid.ID{}, 2)
	require.Len(t, limited, 2)
	all := Served(idx, spiffeid.ID{}, 0)
	require.Equal(t, all[:2], limited, "the first by ID")
	require.Len(t, Served(idx, agent, 1), 1)
	require.Len(t, Served(idx, spiffeid.ID{}, 10), 4)
}
