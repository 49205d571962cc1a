package issuer_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Callers that see the same SVIDs and bundles share one Snapshot, which the
// Workload API server encodes once, until one of them changes.
func TestCallersShareASnapshot(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	e := newEnv(t, issuer.Config{X509SVIDTTL: 10 * time.Minute})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: dbID})
	a, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer a.Close()
	b, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	first := a.Snapshot()
	require.Len(t, first.RawX509SVIDs, 2)
	assert.Same(t, first, b.Snapshot(), "two open streams")
	b.Close()
	c, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	assert.Same(t, first, c.Snapshot(), "a caller after the others")
	c.Close()

	// A new CA: every SVID is re-minted, and the callers share the new
	// view.
	e.rotate(t)
	require.Eventually(t, func() bool {
		svids := a.Snapshot().RawX509SVIDs
		return len(svids) == 2 && svids[0] != first.RawX509SVIDs[0] && svids[1] != first.RawX509SVIDs[1]
	}, 10*time.Second, 10*time.Millisecond)
	d, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer d.Close()
	second := a.Snapshot()
	assert.Same(t, second, d.Snapshot())

	// A caller with another view gets its own.
	e.register(t, registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/third")})
	f, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer f.Close()
	assert.Len(t, f.Snapshot().RawX509SVIDs, 3)
	assert.NotSame(t, second, f.Snapshot())
}

// The SVIDs a CA signed hold one copy of its certificate; each SVID keeps
// its own leaf and key, in the form the Workload API sends them.
func TestSVIDsShareTheirCA(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	s := newRemoteSigner(t)
	e := newAgentEnv(t, s, issuer.Config{X509SVIDTTL: 10 * time.Minute})
	for n := range 3 {
		e.register(t, entryFor(n))
	}
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	svids := sub.Snapshot().RawX509SVIDs
	require.Len(t, svids, 3)
	requireGoodSVIDs(t, sub.Snapshot())
	for _, svid := range svids[1:] {
		require.Len(t, svid.Certificates, 2)
		assert.Same(t, &svids[0].Certificates[1][0], &svid.Certificates[1][0], "one copy of the CA")
		assert.NotSame(t, &svids[0].Certificates[0][0], &svid.Certificates[0][0])
		assert.NotEqual(t, svids[0].PrivateKey, svid.PrivateKey, "a key per SVID")
	}
}

// When many entries arrive at once, the SVIDs of the open streams are
// minted first, one batch at a time, and each stream is served as soon as
// its batch is in: not after the rest of the node's entries.
func TestStreamsMintedFirst(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	s := newRemoteSigner(t)
	store := memstore.New(memstore.Config{})
	e := newAgentEnv(t, s, issuer.Config{Registry: store, PreMint: true, MaxBatch: 2, X509SVIDTTL: 10 * time.Minute})
	e.register(t, registry.Entry{SPIFFEID: webID})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	before := len(s.sizes())

	// Six entries of other workloads and one of this caller's, in one
	// write, the caller's last by ID.
	var batch []registry.Entry
	for n := range 6 {
		batch = append(batch, registry.Entry{
			ID: strings.Repeat("0", 31) + strconv.Itoa(n), SPIFFEID: spiffeid.RequireFromPath(td, "/other/"+strconv.Itoa(n)),
			ParentID: parentID, Selectors: []attest.Selector{otherUID}, Revision: 1,
		})
	}
	mine := registry.Entry{ID: strings.Repeat("f", 32), SPIFFEID: dbID, ParentID: parentID,
		Selectors: []attest.Selector{ourUID}, Revision: 1}
	require.NoError(t, store.Replicate(t.Context(), append(batch, mine), nil))
	require.NoError(t, e.iss.Sync(t.Context()))
	require.Eventually(t, func() bool { return len(s.sizes()) >= before+4 }, 10*time.Second, 10*time.Millisecond)

	s.mu.Lock()
	batches := slices.Clone(s.batches[before:])
	s.mu.Unlock()
	require.Len(t, batches, 4, "seven SVIDs in batches of two")
	assert.Equal(t, dbID, batches[0][0], "the stream's entry first")
	for _, b := range batches[1:] {
		assert.NotContains(t, b, dbID)
	}
	require.Eventually(t, func() bool { return len(sub.Snapshot().RawX509SVIDs) == 2 }, 10*time.Second, 10*time.Millisecond)
}

// bulkHolder is a remote signer that holds every batch of entries under
// /bulk/ until released, as a server busy with a node's thousands of
// entries; the other batches go through.
type bulkHolder struct {
	*remoteSigner
	held    chan struct{} // receives a value when a bulk batch is held
	release chan struct{}
}

func (s *bulkHolder) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	if strings.HasPrefix(reqs[0].Entry.SPIFFEID.Path(), "/bulk/") {
		s.held <- struct{}{}
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.remoteSigner.SignX509SVIDs(ctx, reqs)
}

// Property: the entry of an open stream that arrives while a batch of
// pre-mints is under way is minted at once, beside it, not after it: its
// caller does not wait for the node's other entries.
func TestStreamEntryNotBehindPreMint(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	s := &bulkHolder{remoteSigner: newRemoteSigner(t), held: make(chan struct{}, 10), release: make(chan struct{})}
	store := memstore.New(memstore.Config{})
	cfg := issuer.Config{Registry: store, PreMint: true, MaxBatch: 2, X509SVIDTTL: 10 * time.Minute,
		Trust: agentTrust{issuer.TrustFromAuthority(s.m)}, Signer: s}
	e := newEnv(t, cfg)
	defer close(s.release) // after the test's checks, before the issuer's Run ends
	e.register(t, registry.Entry{SPIFFEID: webID})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()

	var bulk []registry.Entry
	for n := range 4 {
		bulk = append(bulk, registry.Entry{ID: strings.Repeat("0", 31) + strconv.Itoa(n),
			SPIFFEID: spiffeid.RequireFromPath(td, "/bulk/"+strconv.Itoa(n)), ParentID: parentID,
			Selectors: []attest.Selector{otherUID}, Revision: 1})
	}
	require.NoError(t, store.Replicate(t.Context(), bulk, nil))
	require.NoError(t, e.iss.Sync(t.Context()))
	select {
	case <-s.held: // the first bulk batch is under way, held
	case <-time.After(30 * time.Second):
		t.Fatal("no bulk batch reached the signer")
	}

	mine := registry.Entry{ID: strings.Repeat("f", 32), SPIFFEID: dbID, ParentID: parentID,
		Selectors: []attest.Selector{ourUID}, Revision: 1}
	require.NoError(t, store.Replicate(t.Context(), []registry.Entry{mine}, nil))
	require.NoError(t, e.iss.Sync(t.Context()))
	require.Eventually(t, func() bool { return len(sub.Snapshot().RawX509SVIDs) == 2 }, 30*time.Second, 10*time.Millisecond,
		"the stream's new entry is served while the bulk batch is held")
	assert.Empty(t, s.held, "no second bulk batch meanwhile: one at a time")
}
