package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestCreateBatchAtomic makes the database fail in the middle of a batch
// (a trigger refuses one entry's row) and checks that the batch is undone
// whole: none of its entries or events remain.
func TestCreateBatchAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	defer s.Close()
	before, err := s.Create(t.Context(), benchEntry(0))
	require.NoError(t, err)

	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.ExecContext(t.Context(), `CREATE TRIGGER refuse BEFORE INSERT ON registry_selectors
		WHEN NEW.selector = 'k8s:sa:3' BEGIN SELECT RAISE(ABORT, 'refused by test'); END`)
	require.NoError(t, err)

	in := []registry.Entry{benchEntry(1), benchEntry(2), benchEntry(3), benchEntry(4)}
	results, err := s.CreateBatch(t.Context(), in)
	require.Error(t, err)
	assert.Nil(t, results)
	assert.True(t, strings.HasPrefix(err.Error(), "sqlstore: "), err.Error())
	assert.Contains(t, err.Error(), "refused by test")

	all, _, err := s.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Equal(t, []registry.Entry{before}, all)
	evs, err := s.Changes(t.Context(), 0, 10)
	require.NoError(t, err)
	assert.Len(t, evs, 1)

	// Without the trigger the same batch is stored.
	_, err = db.ExecContext(t.Context(), `DROP TRIGGER refuse`)
	require.NoError(t, err)
	results, err = s.CreateBatch(t.Context(), in)
	require.NoError(t, err)
	for _, r := range results {
		require.NoError(t, r.Err)
	}
}

// TestCreateBatchStoreDown checks that a store that cannot be reached fails
// the batch as a whole.
func TestCreateBatchStoreDown(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	require.NoError(t, s.Close())
	results, err := s.CreateBatch(t.Context(), []registry.Entry{benchEntry(1)})
	require.Error(t, err)
	assert.Nil(t, results)
	assert.True(t, strings.HasPrefix(err.Error(), "sqlstore: "), err.Error())

	// Validation comes first and needs no database.
	_, err = s.CreateBatch(t.Context(), make([]registry.Entry, registry.MaxBatch+1))
	require.ErrorIs(t, err, registry.ErrInvalid)
}

// TestCreateBatchFederates stores entries with federated trust domains
// in a batch and finds them by the sets the batch wrote.
func TestCreateBatchFederates(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	defer s.Close()
	e := benchEntry(1)
	e.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("b.org"), spiffeid.RequireTrustDomainFromString("a.org")}
	results, err := s.CreateBatch(t.Context(), []registry.Entry{e, benchEntry(2)})
	require.NoError(t, err)
	require.NoError(t, results[0].Err)
	got, _, err := s.List(t.Context(), registry.Filter{ByFederatesWith: &registry.FederatesWithFilter{
		TrustDomains: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("a.org")}, Match: registry.MatchAny,
	}}, registry.Page{})
	require.NoError(t, err)
	assert.Equal(t, []registry.Entry{results[0].Entry}, got)
	got, _, err = s.List(t.Context(), registry.Filter{BySelectors: &registry.SelectorFilter{
		Selectors: []attest.Selector{{Type: "k8s", Value: "sa:2"}}, Match: registry.MatchAny,
	}}, registry.Page{})
	require.NoError(t, err)
	assert.Equal(t, []registry.Entry{results[1].Entry}, got)
}

// BenchmarkCreateBatchSQLite measures creating 10,000 entries in batches
// of 500 in a fresh SQLite database, and reports entries per second.
func BenchmarkCreateBatchSQLite(b *testing.B) {
	const total, batch = 10_000, 500
	entries := make([]registry.Entry, total)
	for i := range entries {
		entries[i] = benchEntry(i)
	}
	n := 0
	for b.Loop() {
		b.StopTimer()
		s, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(b.TempDir(), "r.db")})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for i := 0; i < total; i += batch {
			results, err := s.CreateBatch(b.Context(), entries[i:i+batch])
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range results {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
		}
		n += total
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}
