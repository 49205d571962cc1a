package sqlstore_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func openMySQL(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn})
	require.NoError(t, err)
	return s
}

// mysqlDB opens the database of dsn for the test's own statements.
func mysqlDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMySQLContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s := openMySQL(t, mysqltest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestMySQLBatchContract(t *testing.T) {
	registrytest.RunBatch(t, func(t *testing.T) registrytest.BatchStore {
		s := openMySQL(t, mysqltest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestMySQLDurable(t *testing.T) {
	dsn := mysqltest.New(t)
	registrytest.RunDurable(t, func(t *testing.T) (registry.Store, io.Closer) {
		s := openMySQL(t, dsn)
		return s, s
	})
}

func TestMySQLNodeContract(t *testing.T) {
	registrytest.RunNode(t, func(t *testing.T) registrytest.NodeStore {
		s := openMySQL(t, mysqltest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

// TestMySQLNotifyContract runs the notification suite on MySQL: without
// Run, the store tells of its own writes; with Run, of its own writes
// through the change counters; and a store tells of the writes of another
// store on the same database.
func TestMySQLNotifyContract(t *testing.T) {
	t.Run("OwnWrites", func(t *testing.T) {
		registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore {
			s := openMySQL(t, mysqltest.New(t))
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return s
		})
	})
	t.Run("Polling", func(t *testing.T) {
		registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore {
			s := openMySQL(t, mysqltest.New(t))
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			run(t, s)
			return s
		})
	})
	t.Run("Shared", func(t *testing.T) {
		registrytest.RunNotifyShared(t, func(t *testing.T) (registrytest.NotifyStore, registrytest.NotifyStore) {
			dsn := mysqltest.New(t)
			writer, watcher := openMySQL(t, dsn), openMySQL(t, dsn)
			t.Cleanup(func() {
				require.NoError(t, writer.Close())
				require.NoError(t, watcher.Close())
			})
			run(t, watcher)
			return writer, watcher
		})
	})
}

// TestMySQLMigrations checks that opening a database again applies
// nothing, that every version is recorded once, that the triggers of the
// change counters are in place, and that a newer schema is refused.
func TestMySQLMigrations(t *testing.T) {
	ctx := t.Context()
	dsn := mysqltest.New(t)
	for range 2 {
		s := openMySQL(t, dsn)
		require.NoError(t, s.Close())
	}
	db := mysqlDB(t, dsn)
	var n, latest int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM registry_schema_migrations`).Scan(&n, &latest))
	assert.Equal(t, 6, n)
	assert.Equal(t, 6, latest)
	var triggers int
	require.NoError(t, db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'registry\_%\_notify'`).Scan(&triggers))
	assert.Equal(t, 16, triggers, "one per table and event")

	_, err := db.ExecContext(ctx, `INSERT INTO registry_schema_migrations (version, applied_at) VALUES (99, 'later')`)
	require.NoError(t, err)
	_, err = sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn})
	require.ErrorContains(t, err, "sqlstore: database schema version 99 is newer than version 6")
}

// TestMySQLMigrationResumes cuts the first migration short, as a server
// killed while it ran would leave it (MySQL commits each DDL statement on
// its own), and checks that the next Open completes it.
func TestMySQLMigrationResumes(t *testing.T) {
	ctx := t.Context()
	dsn := mysqltest.New(t)
	s := openMySQL(t, dsn)
	require.NoError(t, s.Close())
	db := mysqlDB(t, dsn)
	for _, stmt := range []string{
		`DROP TABLE registry_changes`,
		`DROP TRIGGER registry_authority_marks_del_notify`,
		`DELETE FROM registry_schema_migrations`,
	} {
		_, err := db.ExecContext(ctx, stmt)
		require.NoError(t, err, stmt)
	}
	s = openMySQL(t, dsn)
	defer s.Close()
	sub, cancel := s.Subscribe(registry.TopicAuthorities)
	defer cancel()
	run(t, s)
	registrytest.WaitSignal(t, sub, "the poller's first signal") // sent by run's wait too
	_, err := s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "ab", ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "authorities subscriber")
	_, err = db.ExecContext(ctx, `DELETE FROM registry_authority_marks`)
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "authorities subscriber of a delete in plain SQL")
}

// TestMySQLOpenTogether opens several stores at once on a new database, as
// servers started together do: one migrates while the others wait for its
// lock, and the schema is applied once.
func TestMySQLOpenTogether(t *testing.T) {
	const n = 8
	for round := range 3 {
		dsn := mysqltest.New(t)
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn})
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
		var versions, latest int
		require.NoError(t, mysqlDB(t, dsn).QueryRowContext(t.Context(), `SELECT COUNT(*), MAX(version) FROM registry_schema_migrations`).Scan(&versions, &latest))
		assert.Equal(t, latest, versions, "each migration recorded once")
	}
}

func TestMySQLOpenErrors(t *testing.T) {
	for name, dsn := range map[string]string{
		"bad DSN":     "user@tcp(host",
		"no database": "user@tcp(127.0.0.1:1)/",
		"unreachable": "user@unix(/nonexistent/mysqld.sock)/db",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn})
			require.ErrorContains(t, err, "sqlstore: ")
		})
	}
}

// TestMySQLLongValues checks that the longest values the registry accepts
// fit their columns and are found again, with a DSN that asks for a SQL
// mode that cuts long values (the store sets its own).
func TestMySQLLongValues(t *testing.T) {
	ctx := t.Context()
	dsn := mysqltest.New(t)
	s := openMySQL(t, dsn+"?sql_mode=%27%27")
	defer s.Close()
	long := strings.Repeat("a", registry.MaxIDLen-len("spiffe://example.org/"))
	e, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/" + long),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/" + long[1:] + "b"),
		Hint:      strings.Repeat("h", registry.MaxHintLen),
		Selectors: []attest.Selector{{Type: strings.Repeat("t", attest.MaxTypeLength), Value: strings.Repeat("v", attest.MaxValueLength)}},
	})
	require.NoError(t, err)
	list, _, err := s.List(ctx, registry.Filter{BySPIFFEID: e.SPIFFEID, BySelectors: &registry.SelectorFilter{Selectors: e.Selectors}}, registry.Page{})
	require.NoError(t, err)
	assert.Equal(t, []registry.Entry{e}, list)
	agent, err := s.PutAgent(ctx, registry.Agent{ID: e.SPIFFEID, AttestorType: "join_token"})
	require.NoError(t, err)
	got, err := s.GetAgent(ctx, agent.ID)
	require.NoError(t, err)
	assert.Equal(t, agent, got)

}

// TestMySQLPollerRetries stops the database under a polling store, checks
// that Run logs its failures and keeps trying, that the store signals its
// own writes meanwhile, and that once the database is back Run signals
// every topic and tells of other processes' writes again.
func TestMySQLPollerRetries(t *testing.T) {
	ctx := t.Context()
	srv := mysqltest.NewServer(t, t.TempDir())
	require.NoError(t, mysqlDB(t, srv.DSN()).QueryRowContext(ctx, `SELECT 1`).Err())
	_, err := mysqlDB(t, srv.DSN()).ExecContext(ctx, `CREATE DATABASE registry`)
	require.NoError(t, err)
	dsn, err := mysqltest.WithDatabase(srv.DSN(), "registry")
	require.NoError(t, err)
	logs := make(chan slog.Record, 100)
	s, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.MySQL, DSN: dsn, Logger: slog.New(logRecorder{logs}), PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	sub, cancelSub := s.Subscribe(allTopics)
	defer cancelSub()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { assert.ErrorIs(t, s.Run(runCtx), context.Canceled) })
	registrytest.WaitSignal(t, sub, "the poller's first signal")
	waitLog := func(level slog.Level, what string) {
		t.Helper()
		deadline := time.After(registrytest.SignalWait)
		for {
			select {
			case r := <-logs:
				if r.Level == level {
					return
				}
			case <-deadline:
				t.Fatalf("%s was not logged", what)
			}
		}
	}
	waitLog(slog.LevelInfo, "polling")

	require.NoError(t, srv.Stop())
	for i := range 3 {
		waitLog(slog.LevelWarn, "a failure")
		_ = i
	}
	require.NoError(t, srv.Start())
	waitLog(slog.LevelInfo, "polling again")
	registrytest.WaitSignal(t, sub, "subscriber once the poller is back")
	// The store signals its own writes through the poll now.
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), Document: []byte(`{"keys":[]}`)})
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "subscriber of the store's own write")
	// A write by anyone, even plain SQL, is told of.
	_, err = mysqlDB(t, dsn).ExecContext(ctx, `DELETE FROM registry_bundles`)
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "subscriber of a write in plain SQL")
}

// TestMySQLUnknownTopic checks that a counter of a topic the store does
// not know, as a newer version might keep, wakes every topic when it
// moves.
func TestMySQLUnknownTopic(t *testing.T) {
	ctx := t.Context()
	dsn := mysqltest.New(t)
	s := openMySQL(t, dsn)
	defer s.Close()
	db := mysqlDB(t, dsn)
	_, err := db.ExecContext(ctx, `INSERT INTO registry_changes (topic, version) VALUES ('later', 0)`)
	require.NoError(t, err)
	subs := map[registry.Topic]<-chan struct{}{}
	for _, topic := range topics {
		ch, cancel := s.Subscribe(topic)
		defer cancel()
		subs[topic] = ch
	}
	run(t, s)
	for _, ch := range subs {
		<-ch // the poller's first signal
	}
	_, err = db.ExecContext(ctx, `UPDATE registry_changes SET version = version + 1 WHERE topic = 'later'`)
	require.NoError(t, err)
	for topic, ch := range subs {
		registrytest.WaitSignal(t, ch, topic.String()+" subscriber")
	}
}

// TestMySQLRunTwice checks that a second Run is refused while one runs.
func TestMySQLRunTwice(t *testing.T) {
	s := openMySQL(t, mysqltest.New(t))
	defer s.Close()
	run(t, s)
	require.EqualError(t, s.Run(t.Context()), "sqlstore: Run is already running")
}
