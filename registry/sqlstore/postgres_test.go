package sqlstore_test

import (
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestMain provides the tests with a PostgreSQL server (pgtest) and a
// MariaDB server (mysqltest, started by the first test that needs it).
func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if err := mysqltest.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "mysqltest:", err)
		code = 1
	}
	os.Exit(code)
}

func openPostgres(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn})
	require.NoError(t, err)
	return s
}

func TestPostgresContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresBatchContract(t *testing.T) {
	registrytest.RunBatch(t, func(t *testing.T) registrytest.BatchStore {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresDurable(t *testing.T) {
	dsn := pgtest.New(t)
	registrytest.RunDurable(t, func(t *testing.T) (registry.Store, io.Closer) {
		s := openPostgres(t, dsn)
		return s, s
	})
}

// TestPostgresMigrateToVersion3 opens a database at schema version 2, whose
// B-tree index refused selectors longer than about 2.7 kB, and checks that
// opening it keeps the entries, finds them by selector, and takes the longest
// selectors; the later migrations (version 4's notification triggers,
// version 5's authorities and marks) apply too.
func TestPostgresMigrateToVersion3(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.New(t)
	s := openPostgres(t, dsn)
	uid := attest.Selector{Type: "unix", Value: "uid:1"}
	old, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/old"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{uid},
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	pc, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	db := stdlib.OpenDB(*pc)
	defer db.Close()
	for _, stmt := range []string{ // back to version 2
		`DROP TABLE registry_federation_relationships`,
		`DELETE FROM registry_schema_migrations WHERE version = 6`,
		`DROP TABLE registry_authority_marks`,
		`ALTER TABLE registry_server_bundles DROP COLUMN authorities`,
		`DELETE FROM registry_schema_migrations WHERE version = 5`,
		`DROP TRIGGER registry_events_notify ON registry_events`,
		`DROP TRIGGER registry_agents_notify ON registry_agents`,
		`DROP TRIGGER registry_bundles_notify ON registry_bundles`,
		`DROP TRIGGER registry_server_bundles_notify ON registry_server_bundles`,
		`DROP FUNCTION registry_notify()`,
		`DELETE FROM registry_schema_migrations WHERE version = 4`,
		`DROP INDEX registry_selectors_entry_id`,
		`DROP INDEX registry_selectors_selector`,
		`ALTER TABLE registry_selectors ADD PRIMARY KEY (entry_id, selector)`,
		`CREATE INDEX registry_selectors_selector ON registry_selectors (selector)`,
		`DELETE FROM registry_schema_migrations WHERE version = 3`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}

	s = openPostgres(t, dsn)
	defer s.Close()
	got, err := s.Get(ctx, old.ID)
	require.NoError(t, err)
	assert.Equal(t, old, got)
	long := attest.Selector{Type: "unix", Value: "path:" + registrytest.UnixPath(registrytest.PathMax)}
	created, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/new"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{uid, long},
	})
	require.NoError(t, err)
	page, _, err := s.List(ctx, registry.Filter{BySelectors: &registry.SelectorFilter{Selectors: []attest.Selector{uid}, Match: registry.MatchSuperset}}, registry.Page{})
	require.NoError(t, err)
	assert.ElementsMatch(t, []registry.Entry{old, created}, page)
	var version int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT MAX(version) FROM registry_schema_migrations`).Scan(&version))
	assert.Equal(t, 6, version, "and every later migration")
	var triggers int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'registry\_%\_notify'`).Scan(&triggers))
	assert.Equal(t, 6, triggers, "the notification triggers of versions 4 to 6")
}

// TestPostgresOpenTogether opens several stores at once on a new database,
// as servers started together do: each migrates or waits for the one that
// does, and the schema is applied once.
func TestPostgresOpenTogether(t *testing.T) {
	const n = 8
	for round := range 3 {
		dsn := pgtest.New(t)
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn})
				if err == nil {
					err = s.Close()
				}
				errs <- err
			}()
		}
		close(start)
		for range n {
			require.NoError(t, <-errs, "round %d", round)
		}
		pc, err := pgx.ParseConfig(dsn)
		require.NoError(t, err)
		db := stdlib.OpenDB(*pc)
		var versions, latest int
		require.NoError(t, db.QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM registry_schema_migrations`).Scan(&versions, &latest))
		require.NoError(t, db.Close())
		assert.Equal(t, latest, versions, "each migration recorded once")
	}
}
