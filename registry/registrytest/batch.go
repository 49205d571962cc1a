package registrytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// BatchStore is a store that creates entries in batches.
type BatchStore interface {
	registry.Store
	registry.BatchCreator
}

// RunBatch runs the contract suite of [registry.BatchCreator] against
// stores made by newStore, which must return a new, empty store each time
// it is called and release it with t.Cleanup.
func RunBatch(t *testing.T, newStore func(t *testing.T) BatchStore) {
	t.Run("CreateBatch", func(t *testing.T) { testBatchCreate(t, newStore(t)) })
	t.Run("BatchPartialFailure", func(t *testing.T) { testBatchPartial(t, newStore(t)) })
	t.Run("BatchChosenIDs", func(t *testing.T) { testBatchChosenIDs(t, newStore(t)) })
	t.Run("BatchLimits", func(t *testing.T) { testBatchLimits(t, newStore(t)) })
	t.Run("BatchNotAliased", func(t *testing.T) { testBatchNotAliased(t, newStore(t)) })
	t.Run("BatchCanceledContext", func(t *testing.T) { testBatchCanceled(t, newStore(t)) })
	t.Run("ConcurrentBatches", func(t *testing.T) { testConcurrentBatches(t, newStore(t)) })
}

func createBatch(t testing.TB, s BatchStore, entries []registry.Entry) []registry.BatchResult {
	t.Helper()
	results, err := s.CreateBatch(t.Context(), entries)
	require.NoError(t, err)
	require.Len(t, results, len(entries))
	return results
}

func head(t testing.TB, s registry.Store) int64 {
	t.Helper()
	h, err := s.Head(t.Context())
	require.NoError(t, err)
	return h
}

func testBatchCreate(t *testing.T, s BatchStore) {
	ctx := t.Context()
	before := head(t, s)
	full := registry.Entry{
		SPIFFEID:      id("/web"),
		ParentID:      id("/agent/node1"),
		Selectors:     []attest.Selector{sel("unix", "uid:1000"), sel("k8s", "ns:prod")},
		X509SVIDTTL:   time.Hour,
		JWTSVIDTTL:    5 * time.Minute,
		DNSNames:      []string{"web.example.org"},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("z.org"), spiffeid.RequireTrustDomainFromString("a.org")},
		Hint:          "web",
	}
	in := []registry.Entry{full, entry("/db", "/agent/node1", sel("unix", "uid:1001")), entry("/cache", "/agent/node2", sel("unix", "uid:1002"))}
	results := createBatch(t, s, in)
	seen := map[string]bool{}
	for i, r := range results {
		require.NoError(t, r.Err, "entry %d", i)
		got := r.Entry
		assert.True(t, registry.ValidEntryID(got.ID), "entry %d has ID %q", i, got.ID)
		assert.False(t, seen[got.ID], "entry IDs are unique")
		seen[got.ID] = true
		assert.Equal(t, int64(1), got.Revision)
		assert.False(t, got.CreatedAt.IsZero())
		assert.Equal(t, got.CreatedAt, got.UpdatedAt)
		assert.Equal(t, in[i].SPIFFEID, got.SPIFFEID)
		stored, err := s.Get(ctx, got.ID)
		require.NoError(t, err)
		assert.Equal(t, got, stored, "the result is the entry as stored")
	}
	// As Create does, the store sorts the sets.
	assert.Equal(t, []attest.Selector{sel("k8s", "ns:prod"), sel("unix", "uid:1000")}, results[0].Entry.Selectors)
	assert.Equal(t, "a.org", results[0].Entry.FederatesWith[0].Name())
	assert.Equal(t, time.Hour, results[0].Entry.X509SVIDTTL)

	// One event per entry, in batch order, after the events before.
	evs, err := s.Changes(ctx, before, 100)
	require.NoError(t, err)
	require.Len(t, evs, len(in))
	for i, ev := range evs {
		assert.Equal(t, registry.OpCreate, ev.Op)
		assert.Equal(t, results[i].Entry.ID, ev.EntryID)
		assert.Nil(t, ev.Before)
		require.NotNil(t, ev.After)
		assert.Equal(t, results[i].Entry, *ev.After)
		if i > 0 {
			assert.Greater(t, ev.Seq, evs[i-1].Seq)
		}
	}
	assert.Equal(t, evs[len(evs)-1].Seq, head(t, s))
	assert.Len(t, listAll(t, s, registry.Filter{}, 0), len(in))
}

// testBatchChosenIDs: entries of a batch keep the IDs their caller chose;
// one whose ID a stored entry or an earlier entry of the batch has fails
// on its own.
func testBatchChosenIDs(t *testing.T, s BatchStore) {
	ctx := t.Context()
	taken := mustCreate(t, s, entry("/taken", "/agent", sel("unix", "uid:1")))
	a, b, c := registry.NewEntryID(), registry.NewEntryID(), registry.NewEntryID()
	mk := func(path, id string, uid int) registry.Entry {
		e := entry(path, "/agent", sel("unix", fmt.Sprintf("uid:%d", uid)))
		e.ID = id
		return e
	}
	results := createBatch(t, s, []registry.Entry{
		mk("/a", a, 10),        // 0 stored
		mk("/x", taken.ID, 11), // 1 ID of a stored entry
		mk("/y", a, 12),        // 2 ID of entry 0
		mk("/b", b, 13),        // 3 stored
		mk("/z", "", 14),       // 4 stored, with a new ID
		mk("/c", c, 15),        // 5 stored
	})
	for i, want := range []string{a, "", "", b, "", c} {
		if i == 1 || i == 2 {
			require.ErrorIs(t, results[i].Err, registry.ErrAlreadyExists, "entry %d", i)
			assert.Contains(t, results[i].Err.Error(), "is taken")
			continue
		}
		require.NoError(t, results[i].Err, "entry %d", i)
		if want != "" {
			assert.Equal(t, want, results[i].Entry.ID)
		}
		got, err := s.Get(ctx, results[i].Entry.ID)
		require.NoError(t, err)
		assert.Equal(t, results[i].Entry, got)
	}
	assert.NotContains(t, []string{a, b, c, taken.ID}, results[4].Entry.ID)
	got, err := s.Get(ctx, taken.ID)
	require.NoError(t, err)
	assert.Equal(t, taken, got)
	assert.Len(t, listAll(t, s, registry.Filter{}, 0), 5)
}

func testBatchPartial(t *testing.T, s BatchStore) {
	ctx := t.Context()
	existing := mustCreate(t, s, entry("/existing", "/agent", sel("unix", "uid:1")))
	before := head(t, s)
	withID := entry("/with-id", "/agent", sel("unix", "uid:2"))
	withID.ID = "not-an-entry-id"
	withRevision := entry("/with-revision", "/agent", sel("unix", "uid:3"))
	withRevision.Revision = 4
	in := []registry.Entry{
		entry("/a", "/agent", sel("unix", "uid:10")),       // 0 stored
		entry("/no-selectors", "/agent"),                   // 1 invalid
		entry("/b", "/agent", sel("unix", "uid:11")),       // 2 stored
		entry("/a", "/agent", sel("unix", "uid:10")),       // 3 similar to 0
		entry("/existing", "/agent", sel("unix", "uid:1")), // 4 similar to a stored entry
		withID,       // 5 invalid ID
		withRevision, // 6 invalid
		entry("/a", "/agent", sel("unix", "uid:10"), sel("unix", "gid:10")),                        // 7 stored: other selectors
		{SPIFFEID: id("/c"), ParentID: id("/agent"), Selectors: []attest.Selector{{Type: "unix"}}}, // 8 invalid selector
		entry("/d", "/agent", sel("unix", "uid:12")),                                               // 9 stored
	}
	results := createBatch(t, s, in)
	for _, i := range []int{1, 5, 6, 8} {
		require.ErrorIs(t, results[i].Err, registry.ErrInvalid, "entry %d", i)
		assert.Zero(t, results[i].Entry, "entry %d", i)
	}
	for _, i := range []int{3, 4} {
		require.ErrorIs(t, results[i].Err, registry.ErrAlreadyExists, "entry %d", i)
		assert.Zero(t, results[i].Entry, "entry %d", i)
	}
	stored := []int{0, 2, 7, 9}
	for _, i := range stored {
		require.NoError(t, results[i].Err, "entry %d", i)
	}
	// The failures did not keep the others from being stored, and nothing
	// else was stored.
	all := listAll(t, s, registry.Filter{}, 0)
	assert.Len(t, all, 1+len(stored))
	for _, i := range stored {
		got, err := s.Get(ctx, results[i].Entry.ID)
		require.NoError(t, err)
		assert.Equal(t, results[i].Entry, got)
	}
	got, err := s.Get(ctx, existing.ID)
	require.NoError(t, err)
	assert.Equal(t, existing, got, "the entry a batch entry was similar to is unchanged")

	// Events only for the stored entries, in batch order.
	evs, err := s.Changes(ctx, before, 100)
	require.NoError(t, err)
	require.Len(t, evs, len(stored))
	for k, i := range stored {
		assert.Equal(t, results[i].Entry.ID, evs[k].EntryID)
	}

	// A batch in which every entry fails stores nothing.
	results = createBatch(t, s, []registry.Entry{entry("/a", "/agent", sel("unix", "uid:10")), entry("/x", "/agent")})
	require.ErrorIs(t, results[0].Err, registry.ErrAlreadyExists)
	require.ErrorIs(t, results[1].Err, registry.ErrInvalid)
	assert.Equal(t, evs[len(evs)-1].Seq, head(t, s))
}

func testBatchLimits(t *testing.T, s BatchStore) {
	// An over-long batch is refused whole: it bounds one transaction.
	over := make([]registry.Entry, registry.MaxBatch+1)
	for i := range over {
		over[i] = entry(fmt.Sprintf("/w%d", i), "/agent", sel("unix", fmt.Sprintf("uid:%d", i)))
	}
	results, err := s.CreateBatch(t.Context(), over)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.Nil(t, results)
	assert.Zero(t, head(t, s))

	for _, empty := range [][]registry.Entry{nil, {}} {
		results, err = s.CreateBatch(t.Context(), empty)
		require.NoError(t, err)
		assert.Empty(t, results)
	}
	assert.Zero(t, head(t, s))

	// A batch of exactly MaxBatch entries is stored.
	results = createBatch(t, s, over[:registry.MaxBatch])
	for i, r := range results {
		require.NoError(t, r.Err, "entry %d", i)
	}
	assert.Len(t, listAll(t, s, registry.Filter{}, 500), registry.MaxBatch)
	evs, err := s.Changes(t.Context(), 0, registry.MaxBatch+1)
	require.NoError(t, err)
	require.Len(t, evs, registry.MaxBatch)
	for i, ev := range evs {
		require.Equal(t, results[i].Entry.ID, ev.EntryID, "event %d", i)
	}
}

func testBatchNotAliased(t *testing.T, s BatchStore) {
	in := []registry.Entry{entry("/w", "/agent", sel("unix", "uid:2"), sel("unix", "uid:1"))}
	in[0].DNSNames = []string{"w.example.org"}
	results := createBatch(t, s, in)
	require.NoError(t, results[0].Err)
	id := results[0].Entry.ID

	// Neither the caller's entries nor the results share memory with the
	// store.
	in[0].Selectors[0] = sel("unix", "uid:666")
	in[0].DNSNames[0] = "evil.example.org"
	results[0].Entry.Selectors[0] = sel("unix", "uid:667")
	results[0].Entry.DNSNames[0] = "evil2.example.org"
	got, err := s.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, []attest.Selector{sel("unix", "uid:1"), sel("unix", "uid:2")}, got.Selectors)
	assert.Equal(t, []string{"w.example.org"}, got.DNSNames)
}

func testBatchCanceled(t *testing.T, s BatchStore) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results, err := s.CreateBatch(ctx, []registry.Entry{entry("/w", "/agent", sel("unix", "uid:1"))})
	require.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, results)
	assert.Empty(t, listAll(t, s, registry.Filter{}, 0))
	assert.Zero(t, head(t, s))
}

// testConcurrentBatches races batches against single creates: every entry
// is stored once, and each batch's events are consecutive in the feed, in
// batch order, because a batch is one write.
func testConcurrentBatches(t *testing.T, s BatchStore) {
	const writers, batches, size = 3, 4, 25
	var wg sync.WaitGroup
	batchIDs := make([][][]string, writers)
	errs := make(chan error, writers*batches*size+writers*batches)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var in []registry.Entry
				for i := range size {
					in = append(in, entry(fmt.Sprintf("/w%d/b%d/e%d", w, b, i), "/agent", sel("unix", "uid:1")))
				}
				results, err := s.CreateBatch(t.Context(), in)
				if err != nil {
					errs <- err
					return
				}
				var ids []string
				for _, r := range results {
					if r.Err != nil {
						errs <- r.Err
						continue
					}
					ids = append(ids, r.Entry.ID)
				}
				batchIDs[w] = append(batchIDs[w], ids)
			}
		})
	}
	wg.Go(func() {
		for i := range writers * batches {
			if _, err := s.Create(t.Context(), entry(fmt.Sprintf("/single/%d", i), "/agent", sel("unix", "uid:1"))); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	evs, err := s.Changes(t.Context(), 0, 10_000)
	require.NoError(t, err)
	require.Len(t, evs, writers*batches*(size+1))
	pos := make(map[string]int, len(evs))
	for i, ev := range evs {
		_, dup := pos[ev.EntryID]
		require.False(t, dup, "entry %s has two create events", ev.EntryID)
		pos[ev.EntryID] = i
	}
	for w := range writers {
		require.Len(t, batchIDs[w], batches)
		for _, ids := range batchIDs[w] {
			require.Len(t, ids, size)
			first := pos[ids[0]]
			for k, id := range ids {
				require.Equal(t, first+k, pos[id], "a batch's events are consecutive and in order")
			}
		}
	}
}
