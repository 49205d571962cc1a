package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name string
		conf sqlstore.Config
	}{
		{"no dialect", sqlstore.Config{DSN: "x"}},
		{"unknown dialect", sqlstore.Config{Dialect: "oracle", DSN: "x"}},
		{"empty SQLite path", sqlstore.Config{Dialect: sqlstore.SQLite}},
		{"SQLite path with parameters", sqlstore.Config{Dialect: sqlstore.SQLite, DSN: "a.db?_pragma=foreign_keys(0)"}},
		{"bad PostgreSQL DSN", sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: "postgres://%zz"}},
		{"unreachable SQLite directory", sqlstore.Config{Dialect: sqlstore.SQLite, DSN: "/nonexistent/dir/registry.db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sqlstore.Open(t.Context(), tt.conf)
			require.ErrorContains(t, err, "sqlstore: ")
		})
	}
}

func TestMigrations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	// Opening again applies nothing and keeps one row per version.
	s = openSQLite(t, path)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*) FROM registry_schema_migrations`).Scan(&n))
	assert.Equal(t, 6, n)

	// A schema written by a newer program is refused, not guessed at.
	_, err = db.Exec(`INSERT INTO registry_schema_migrations (version, applied_at) VALUES (99, 'later')`)
	require.NoError(t, err)
	_, err = sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: path})
	require.ErrorContains(t, err, "sqlstore: database schema version 99 is newer than version 6")
}

// TestCorruptRows checks that rows the store did not write are rejected
// rather than served.
func TestCorruptRows(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	defer s.Close()
	e, err := s.Create(ctx, registry.Entry{
		SPIFFEID:      spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:      spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors:     []attest.Selector{{Type: "unix", Value: "uid:1"}},
		FederatesWith: []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("b.org")},
	})
	require.NoError(t, err)

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	for _, data := range []string{
		`not json`,
		`{"spiffe_id":"http://x","parent_id":"spiffe://example.org/a","selectors":["a:b"]}`,
		`{"spiffe_id":"spiffe://example.org/w","parent_id":"bad","selectors":["a:b"]}`,
		`{"spiffe_id":"spiffe://example.org/w","parent_id":"spiffe://example.org/a","selectors":["nocolon"]}`,
		`{"spiffe_id":"spiffe://example.org/w","parent_id":"spiffe://example.org/a","selectors":["a:b"],"federates_with":["Bad TD"]}`,
		`{"spiffe_id":"spiffe://example.org/w","parent_id":"spiffe://example.org/a","selectors":[]}`,
	} {
		_, err = db.Exec(`UPDATE registry_entries SET data = ?`, data)
		require.NoError(t, err)
		_, err = db.Exec(`UPDATE registry_events SET after_data = ?`, data)
		require.NoError(t, err)
		_, err = s.Get(ctx, e.ID)
		require.ErrorContains(t, err, "sqlstore: decoding stored entry", data)
		_, _, err = s.List(ctx, registry.Filter{}, registry.Page{})
		require.ErrorContains(t, err, "sqlstore: decoding stored entry", data)
		_, err = s.Changes(ctx, 0, 10)
		require.ErrorContains(t, err, "sqlstore: decoding stored entry", data)
		_, err = s.Update(ctx, e)
		require.ErrorContains(t, err, "sqlstore: decoding stored entry", data)
	}
}

// TestEntryWithRemovedFlags checks that an entry stored by an earlier
// version, with admin and downstream flags that nothing enforced, is read,
// listed and updated as if they were not there (the old flag does not make
// it a downstream entry), and that its next write drops them.
func TestEntryWithRemovedFlags(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	defer s.Close()
	e, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
	})
	require.NoError(t, err)

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	var data string
	require.NoError(t, db.QueryRow(`SELECT data FROM registry_entries`).Scan(&data))
	old := strings.Replace(data, `"revision":`, `"admin":true,"downstream":true,"revision":`, 1)
	require.NotEqual(t, data, old)
	_, err = db.Exec(`UPDATE registry_entries SET data = ?`, old)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE registry_events SET after_data = ?`, old)
	require.NoError(t, err)

	got, err := s.Get(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, e, got)
	list, _, err := s.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	assert.Equal(t, []registry.Entry{e}, list)
	evs, err := s.Changes(ctx, 0, 10)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	assert.Equal(t, e, *evs[0].After)

	got.Hint = "updated"
	_, err = s.Update(ctx, got)
	require.NoError(t, err)
	require.NoError(t, db.QueryRow(`SELECT data FROM registry_entries`).Scan(&data))
	assert.NotContains(t, data, "admin")
	assert.NotContains(t, data, "downstream")
}

// TestClosed checks that a closed store reports errors instead of panicking.
func TestClosed(t *testing.T) {
	ctx := t.Context()
	s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	require.NoError(t, s.Close())
	_, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
	})
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.Get(ctx, registry.NewEntryID())
	require.ErrorContains(t, err, "sqlstore: ")
	_, _, err = s.List(ctx, registry.Filter{}, registry.Page{})
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.Changes(ctx, 0, 1)
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.Head(ctx)
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.Delete(ctx, registry.NewEntryID(), 0)
	require.ErrorContains(t, err, "sqlstore: ")
}
