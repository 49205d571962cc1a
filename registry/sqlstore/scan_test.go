package sqlstore_test

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	_ index.Scanner = (*sqlstore.Store)(nil)
	_ index.Counter = (*sqlstore.Store)(nil)
)

// scanStore opens a new store of the dialect, closed when the test ends.
func scanStore(t *testing.T, dialect string) *sqlstore.Store {
	t.Helper()
	var s *sqlstore.Store
	switch dialect {
	case "postgres":
		s = openPostgres(t, pgtest.New(t))
	case "mysql":
		s = openMySQL(t, mysqltest.New(t))
	default:
		s = openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	}
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

// createBatches stores n entries: benchEntry's, every seventh with the
// optional fields set too.
func createBatches(t *testing.T, s *sqlstore.Store, n int) {
	t.Helper()
	in := make([]registry.Entry, n)
	for i := range in {
		in[i] = benchEntry(i)
		if i%7 == 0 {
			in[i].DNSNames = []string{fmt.Sprintf("w%d.example.org", i)}
			in[i].FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("other.org")}
			in[i].Hint = "hint"
			in[i].X509SVIDTTL, in[i].JWTSVIDTTL = time.Hour, time.Minute
		}
	}
	for len(in) > 0 {
		k := min(len(in), registry.MaxBatch)
		res, err := s.CreateBatch(t.Context(), in[:k])
		require.NoError(t, err)
		for _, r := range res {
			require.NoError(t, r.Err)
		}
		in = in[k:]
	}
}

func scanAll(ctx context.Context, s *sqlstore.Store) ([]registry.Entry, error) {
	var out []registry.Entry
	err := s.ScanEntries(ctx, func(e registry.Entry) error {
		out = append(out, e)
		return nil
	})
	return out, err
}

func byID(a, b registry.Entry) int { return cmp.Compare(a.ID, b.ID) }

// Property: ScanEntries yields every stored entry once, each as List
// returns it, every field included, across many decode batches; on an
// empty store it yields nothing.
func TestScanEntries(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres", "mysql"} {
		t.Run(dialect, func(t *testing.T) {
			t.Cleanup(leaktest.Check(t)) // first, so that it runs after the store closes
			s := scanStore(t, dialect)
			got, err := scanAll(t.Context(), s)
			require.NoError(t, err)
			assert.Empty(t, got)
			n, err := s.CountEntries(t.Context())
			require.NoError(t, err)
			assert.Zero(t, n)

			createBatches(t, s, 1500)
			want, _, err := s.List(t.Context(), registry.Filter{}, registry.Page{})
			require.NoError(t, err)
			require.Len(t, want, 1500)
			got, err = scanAll(t.Context(), s)
			require.NoError(t, err)
			slices.SortFunc(got, byID)
			slices.SortFunc(want, byID)
			assert.Equal(t, want, got)
			n, err = s.CountEntries(t.Context())
			require.NoError(t, err)
			assert.Equal(t, 1500, n)
		})
	}
}

// Property: an error from yield ends the scan at once: yield is not
// called again, the error is returned as is, and nothing is left running.
// A scan whose context is done fails with the context's error.
func TestScanEntriesStops(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first, so that it runs after the store closes
	s := scanStore(t, "sqlite")
	createBatches(t, s, 1500)
	stop := errors.New("enough")
	calls := 0
	err := s.ScanEntries(t.Context(), func(registry.Entry) error {
		calls++
		if calls == 10 {
			return stop
		}
		return nil
	})
	assert.Equal(t, stop, err)
	assert.Equal(t, 10, calls)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = scanAll(ctx, s)
	require.ErrorIs(t, err, context.Canceled)
	_, err = s.CountEntries(ctx)
	require.ErrorIs(t, err, context.Canceled)
}

// Property: a stored row that does not decode, or decodes to an invalid
// entry, fails the scan with an error naming it; the scan neither panics
// nor skips the row.
func TestScanEntriesBadRow(t *testing.T) {
	for _, tt := range []struct{ name, data string }{
		{"truncated JSON", `{"id":`},
		{"no selectors", `{"id":"X","spiffe_id":"spiffe://example.org/w","parent_id":"spiffe://example.org/a","selectors":[],"revision":1}`},
		{"bad SPIFFE ID", `{"id":"X","spiffe_id":"http://example.org/w","parent_id":"spiffe://example.org/a","selectors":["k8s:ns:1"],"revision":1}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(leaktest.Check(t)) // first, so that it runs after the store closes
			path := filepath.Join(t.TempDir(), "registry.db")
			s := openSQLite(t, path)
			defer s.Close()
			createBatches(t, s, 600)
			db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
			require.NoError(t, err)
			defer db.Close()
			_, err = db.ExecContext(t.Context(), `UPDATE registry_entries SET data = ? WHERE id = (SELECT MAX(id) FROM registry_entries)`, tt.data)
			require.NoError(t, err)

			_, err = scanAll(t.Context(), s)
			require.Error(t, err)
			assert.ErrorContains(t, err, "sqlstore: decoding stored entry")
		})
	}
}

// pagedStore hides ScanEntries: an index built on it pages through List,
// as it did before stores could scan.
type pagedStore struct{ registry.Store }

// BenchmarkIndexBuild builds the authorized-entries index (registry/index)
// from a SQLite store of 100,000 entries: "scan" reads them with
// ScanEntries, in one query decoded on every core, "pages" pages through
// List, 10,000 at a time in ID order. heap-B/entry is the live heap the
// index holds, per entry; cpu-s/op the process's CPU time (every thread)
// per build, which other jobs on a shared machine do not stretch. Run
// with -benchtime 3x.
func BenchmarkIndexBuild(b *testing.B) {
	const n = 100_000
	s, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(b.TempDir(), "r.db")})
	require.NoError(b, err)
	defer s.Close()
	in := make([]registry.Entry, 0, registry.MaxBatch)
	for i := range n {
		in = append(in, benchEntry(i))
		if len(in) == registry.MaxBatch || i == n-1 {
			_, err := s.CreateBatch(b.Context(), in)
			require.NoError(b, err)
			in = in[:0]
		}
	}
	for _, src := range []struct {
		name string
		src  index.Source
	}{{"scan", s}, {"pages", pagedStore{s}}} {
		b.Run(src.name, func(b *testing.B) {
			var before, after runtime.MemStats
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&before)
				cpu0 := cpuTime(b)
				b.StartTimer()
				x, err := index.New(b.Context(), src.src, index.Config{})
				require.NoError(b, err)
				b.StopTimer()
				cpu += cpuTime(b) - cpu0
				require.Equal(b, n, x.Len())
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/entry")
				runtime.KeepAlive(x)
				b.StartTimer()
			}
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
