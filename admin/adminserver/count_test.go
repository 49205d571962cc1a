package adminserver_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestCounts(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	n, err := e.Client.CountEntries(ctx, registry.Filter{})
	require.NoError(t, err)
	assert.Zero(t, n)
	for _, p := range []string{"/a", "/b", "/c"} {
		_, err := e.Client.CreateEntry(ctx, admintest.Entry(p, "unix:uid:1"))
		require.NoError(t, err)
	}
	_, err = e.Client.CreateEntry(ctx, admintest.Entry("/d", "unix:uid:2"))
	require.NoError(t, err)
	n, err = e.Client.CountEntries(ctx, registry.Filter{})
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	n, err = e.Client.CountEntries(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}, Match: registry.MatchExact}})
	require.NoError(t, err)
	assert.Equal(t, 3, n, "the filter applies")
	_, err = e.Client.CountEntries(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{}})
	require.ErrorIs(t, err, registry.ErrInvalid)
	code, body := admintest.Raw(t, e.Path, http.MethodGet, "/v1/entries/count?spiffe_id=nope", nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "spiffe_id")

	n, err = e.Client.CountAgents(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	for _, name := range []string{"one", "two"} {
		_, err := e.Store.PutAgent(ctx, registry.Agent{ID: spiffeid.RequireFromPath(td, "/spiffekit/agent/join_token/"+name),
			AttestorType: "join_token", SerialNumber: "1", ExpiresAt: time.Now().Add(time.Hour)})
		require.NoError(t, err)
	}
	n, err = e.Client.CountAgents(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
}

// Property: deleting a federated bundle deals with the entries federating
// with its trust domain as the mode says, and with no other entry:
// restrict refuses while one does, delete deletes them, dissociate keeps
// them without the trust domain.
func TestDeleteBundleModes(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	other := spiffeid.RequireTrustDomainFromString("other.org")
	third := spiffeid.RequireTrustDomainFromString("third.org")
	setup := func(t *testing.T) (both, only, none registry.Entry) {
		t.Helper()
		_, err := e.Client.SetFederatedBundle(ctx, other, admintest.ForeignDoc(t, "other.org"))
		require.NoError(t, err)
		mk := func(path string, tds ...spiffeid.TrustDomain) registry.Entry {
			x := admintest.Entry(path+admintest.RandomHex(), "unix:uid:1")
			x.FederatesWith = tds
			stored, err := e.Client.CreateEntry(ctx, x)
			require.NoError(t, err)
			return stored
		}
		return mk("/both", other, third), mk("/only", other), mk("/none", third)
	}

	t.Run("restrict", func(t *testing.T) {
		both, only, none := setup(t)
		for _, mode := range []admin.BundleDeleteMode{"", admin.DeleteRestrict} {
			_, err := e.Client.DeleteFederatedBundle(ctx, other, mode)
			require.ErrorIs(t, err, admin.ErrFailedPrecondition)
			assert.Contains(t, err.Error(), `2 entries federate with "other.org"`)
		}
		_, err := e.Client.FederatedBundle(ctx, other)
		require.NoError(t, err, "the bundle stays")
		for _, x := range []registry.Entry{both, only, none} {
			got, err := e.Client.Entry(ctx, x.ID)
			require.NoError(t, err)
			assert.Equal(t, x, got, "untouched")
		}
		_, err = e.Client.DeleteFederatedBundle(ctx, other, admin.DeleteEntries)
		require.NoError(t, err)
		_, err = e.Client.DeleteEntry(ctx, none.ID, 0)
		require.NoError(t, err)
	})

	t.Run("delete", func(t *testing.T) {
		both, only, none := setup(t)
		n, err := e.Client.DeleteFederatedBundle(ctx, other, admin.DeleteEntries)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		_, err = e.Client.FederatedBundle(ctx, other)
		require.ErrorIs(t, err, registry.ErrNotFound)
		for _, x := range []registry.Entry{both, only} {
			_, err := e.Client.Entry(ctx, x.ID)
			require.ErrorIs(t, err, registry.ErrNotFound)
		}
		got, err := e.Client.Entry(ctx, none.ID)
		require.NoError(t, err)
		assert.Equal(t, none, got)
		_, err = e.Client.DeleteEntry(ctx, none.ID, 0)
		require.NoError(t, err)
		assert.Contains(t, e.Log.String(), "admin: entry deleted with the bundle it federates with")
	})

	t.Run("dissociate", func(t *testing.T) {
		both, only, none := setup(t)
		n, err := e.Client.DeleteFederatedBundle(ctx, other, admin.DeleteDissociate)
		require.NoError(t, err)
		assert.Equal(t, 2, n)
		_, err = e.Client.FederatedBundle(ctx, other)
		require.ErrorIs(t, err, registry.ErrNotFound)
		got, err := e.Client.Entry(ctx, both.ID)
		require.NoError(t, err)
		assert.Equal(t, []spiffeid.TrustDomain{third}, got.FederatesWith)
		got, err = e.Client.Entry(ctx, only.ID)
		require.NoError(t, err)
		assert.Empty(t, got.FederatesWith)
		got, err = e.Client.Entry(ctx, none.ID)
		require.NoError(t, err)
		assert.Equal(t, none, got)
		for _, x := range []registry.Entry{both, only, none} {
			_, err = e.Client.DeleteEntry(ctx, x.ID, 0)
			require.NoError(t, err)
		}
	})

	t.Run("bad mode", func(t *testing.T) {
		_, err := e.Client.DeleteFederatedBundle(ctx, other, "cascade")
		require.ErrorIs(t, err, registry.ErrInvalid)
		assert.Contains(t, err.Error(), `unknown bundle delete mode "cascade"`)
	})
}

// racingStore changes an entry behind the admin API's back once, just
// before the API's first update of it, as another administrator would.
type racingStore struct {
	registry.Store
	raced atomic.Bool
}

func (s *racingStore) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	if !s.raced.Swap(true) {
		other, err := s.Store.Get(ctx, e.ID)
		if err != nil {
			return registry.Entry{}, err
		}
		other.Hint = "changed meanwhile"
		if _, err := s.Store.Update(ctx, other); err != nil {
			return registry.Entry{}, err
		}
	}
	return s.Store.Update(ctx, e)
}

// An entry changed while it is being dissociated is read again and
// dissociated, keeping the other change.
func TestDeleteBundleDissociateRace(t *testing.T) {
	var racing *racingStore
	e := admintest.Start(t, func(c *adminserver.Config) {
		racing = &racingStore{Store: c.Entries}
		c.Entries = racing
	})
	ctx := t.Context()
	other := spiffeid.RequireTrustDomainFromString("other.org")
	_, err := e.Client.SetFederatedBundle(ctx, other, admintest.ForeignDoc(t, "other.org"))
	require.NoError(t, err)
	x := admintest.Entry("/a", "unix:uid:1")
	x.FederatesWith = []spiffeid.TrustDomain{other}
	x, err = e.Client.CreateEntry(ctx, x)
	require.NoError(t, err)
	n, err := e.Client.DeleteFederatedBundle(ctx, other, admin.DeleteDissociate)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	got, err := e.Client.Entry(ctx, x.ID)
	require.NoError(t, err)
	assert.Empty(t, got.FederatesWith)
	assert.Equal(t, "changed meanwhile", got.Hint)
	assert.Equal(t, int64(3), got.Revision)
}

// An entry created through the API keeps the ID its caller chose; a taken
// ID is refused with 409, and a malformed one with 400.
func TestCreateEntryChosenID(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	x := admintest.Entry("/a", "unix:uid:1")
	x.ID = registry.NewEntryID()
	got, err := e.Client.CreateEntry(ctx, x)
	require.NoError(t, err)
	assert.Equal(t, x.ID, got.ID)
	y := admintest.Entry("/b", "unix:uid:2")
	y.ID = x.ID
	_, err = e.Client.CreateEntry(ctx, y)
	require.ErrorIs(t, err, registry.ErrAlreadyExists)
	y.ID = "not-an-id"
	_, err = e.Client.CreateEntry(ctx, y)
	require.ErrorIs(t, err, registry.ErrInvalid)
	results, err := e.Client.CreateEntries(ctx, []registry.Entry{x})
	require.NoError(t, err)
	require.ErrorIs(t, results[0].Err, registry.ErrAlreadyExists)
}
