package issuer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// storeTinyTTL stores, as a store that predates the minimum TTL may hold
// it, an entry for id whose X509-SVID TTL (1ns) no CA can honour.
func storeTinyTTL(t *testing.T, e *env, id spiffeid.ID) registry.Entry {
	t.Helper()
	bad := registry.Entry{
		ID: registry.NewEntryID(), Revision: 1, SPIFFEID: id, ParentID: parentID,
		Selectors: []attest.Selector{ourUID}, X509SVIDTTL: time.Nanosecond,
	}
	require.NoError(t, e.store.(*memstore.Store).Replicate(t.Context(), []registry.Entry{bad}, nil))
	require.NoError(t, e.iss.Sync(t.Context()))
	return bad
}

// TestUnmintableEntryCostsOnlyItself: of a caller's two entries, one
// cannot be minted (its 1ns TTL gives a leaf that is expired when it
// arrives). The caller gets the other SVID, on Subscribe and through the
// Workload API, and the failure is counted; a caller whose only entry is
// that one is told to retry (Unavailable), not Internal.
func TestUnmintableEntryCostsOnlyItself(t *testing.T) {
	rec := &recorder{}
	e := newEnv(t, issuer.Config{Observer: rec})
	e.register(t, registry.Entry{SPIFFEID: webID})
	storeTinyTTL(t, e, dbID)

	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	require.Len(t, sub.Snapshot().RawX509SVIDs, 1)
	assert.Equal(t, webID, sub.Snapshot().RawX509SVIDs[0].ID)
	assert.Contains(t, rec.take(), "signed x509 2 1")

	e.serve(t)
	svids, err := e.client(t).FetchX509SVIDs(t.Context())
	require.NoError(t, err)
	require.Len(t, svids, 1)
	assert.Equal(t, webID, svids[0].ID)

	// JWT-SVIDs are unaffected: the entry's JWT TTL is the default.
	jwts, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.NoError(t, err)
	assert.Len(t, jwts, 2)
}

// TestOnlyEntryUnmintable: a caller whose only entry cannot be minted gets
// Unavailable, which clients retry, on Subscribe and on the wire.
func TestOnlyEntryUnmintable(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	storeTinyTTL(t, e, dbID)
	_, err := e.iss.Subscribe(t.Context(), self())
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorContains(t, err, "minting an X509-SVID")

	e.serve(t)
	_, err = e.client(t).FetchX509SVIDs(t.Context())
	requireCode(t, codes.Unavailable, err)
}

// TestUnmintableJWTEntryCostsOnlyItself: an entry the CA refuses a
// JWT-SVID for (another trust domain) costs the caller only that token;
// asked for that entry alone, the caller is told to retry.
func TestUnmintableJWTEntryCostsOnlyItself(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	e.register(t, registry.Entry{SPIFFEID: webID})
	elsewhere := spiffeid.RequireFromString("spiffe://elsewhere.test/web")
	e.register(t, registry.Entry{SPIFFEID: elsewhere})

	jwts, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.NoError(t, err)
	require.Len(t, jwts, 1)
	assert.Equal(t, webID, jwts[0].ID)

	_, err = e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}, ID: elsewhere})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorContains(t, err, "minting a JWT-SVID")
}

// TestStreamDropsOnlyTheUnmintableEntry: on an open stream, an entry that
// changes to a TTL no CA honours loses its SVID (the old one was minted for
// its old revision), and the stream keeps the caller's other SVID.
func TestStreamDropsOnlyTheUnmintableEntry(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	e.register(t, registry.Entry{SPIFFEID: webID})
	db := e.register(t, registry.Entry{SPIFFEID: dbID})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	require.Len(t, sub.Snapshot().RawX509SVIDs, 2)

	db.Revision++
	db.X509SVIDTTL = time.Nanosecond
	require.NoError(t, e.store.(*memstore.Store).Replicate(t.Context(), []registry.Entry{db}, nil))
	require.NoError(t, e.iss.Sync(t.Context()))
	for {
		select {
		case <-sub.Changed():
		case <-time.After(10 * time.Second):
			t.Fatal("the stream was not updated")
		}
		snap := sub.Snapshot()
		require.NotNil(t, snap, "the stream must not end: the caller still has an identity")
		if len(snap.RawX509SVIDs) == 1 {
			assert.Equal(t, webID, snap.RawX509SVIDs[0].ID)
			return
		}
	}
}
