package sqlstore_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var topics = []registry.Topic{registry.TopicEntries, registry.TopicAgents, registry.TopicBundles, registry.TopicAuthorities}

const allTopics = registry.TopicEntries | registry.TopicAgents | registry.TopicBundles | registry.TopicAuthorities

// run runs s.Run until the test ends, and returns once the listener is
// connected, as the signal of every topic it sends then shows. The cleanup
// checks that Run returned the context's error.
func run(t *testing.T, s *sqlstore.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready, stop := s.Subscribe(allTopics)
	defer stop()
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.ErrorIs(t, <-done, context.Canceled)
	})
	registrytest.WaitSignal(t, ready, "the listener's first signal")
}

func TestSQLiteNotifyContract(t *testing.T) {
	registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore {
		s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

// TestSQLiteRun checks that Run on SQLite only waits for its context, and
// that Run refuses to run twice at once.
func TestSQLiteRun(t *testing.T) {
	s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	defer s.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		// A probe below may take the store's one Run for an instant
		// before this Run starts; then this Run is refused and tries
		// again.
		for {
			err := s.Run(ctx)
			if err == nil || err.Error() != "sqlstore: Run is already running" {
				done <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// A probe with a done context returns at once: with the context's
	// error if it got to run, else refused.
	probe, stop := context.WithCancel(t.Context())
	stop()
	require.Eventually(t, func() bool {
		err := s.Run(probe)
		return err != nil && err.Error() == "sqlstore: Run is already running"
	}, registrytest.SignalWait, time.Millisecond, "a second Run is refused")
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
	// Once Run has returned, it may run again.
	require.ErrorIs(t, s.Run(ctx), context.Canceled)
}

// TestPostgresNotifyContract runs the notification suite on PostgreSQL:
// without Run, the store tells of its own writes; with Run, of its own
// writes through the database; and a store tells of the writes of another
// store on the same database.
func TestPostgresNotifyContract(t *testing.T) {
	t.Run("OwnWrites", func(t *testing.T) {
		registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore {
			s := openPostgres(t, pgtest.New(t))
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			return s
		})
	})
	t.Run("Listening", func(t *testing.T) {
		registrytest.RunNotify(t, func(t *testing.T) registrytest.NotifyStore {
			s := openPostgres(t, pgtest.New(t))
			t.Cleanup(func() { require.NoError(t, s.Close()) })
			run(t, s)
			return s
		})
	})
	t.Run("Shared", func(t *testing.T) {
		registrytest.RunNotifyShared(t, func(t *testing.T) (registrytest.NotifyStore, registrytest.NotifyStore) {
			dsn := pgtest.New(t)
			writer, watcher := openPostgres(t, dsn), openPostgres(t, dsn)
			t.Cleanup(func() {
				require.NoError(t, writer.Close())
				require.NoError(t, watcher.Close())
			})
			run(t, watcher)
			return writer, watcher
		})
	})
}

// listeners returns the PIDs of the listener sessions on the database of
// conn.
func listeners(t *testing.T, conn *pgx.Conn) []int32 {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
		sqlstore.ListenerApplicationName)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return pids
}

// TestPostgresListenerReconnects kills the listener's session and checks
// that Run reconnects, signals every topic, and hears the writes of
// another store again.
func TestPostgresListenerReconnects(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.New(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	defer a.Close()
	defer b.Close()
	run(t, a)
	subs := map[registry.Topic]<-chan struct{}{}
	for _, topic := range topics {
		ch, cancel := a.Subscribe(topic)
		defer cancel()
		subs[topic] = ch
	}
	admin, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer admin.Close(context.Background())

	for round := range 2 {
		pids := listeners(t, admin)
		require.Len(t, pids, 1, "round %d: listener sessions", round)
		var killed bool
		require.NoError(t, admin.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pids[0]).Scan(&killed))
		require.True(t, killed)
		for _, topic := range topics {
			registrytest.WaitSignal(t, subs[topic], fmt.Sprintf("round %d: %s subscriber after reconnecting", round, topic))
		}
		// The new session listens: another store's write is heard.
		_, err := b.PutAgent(ctx, registry.Agent{ID: spiffeid.RequireFromString("spiffe://example.org/agent/a"), AttestorType: "join_token"})
		require.NoError(t, err)
		registrytest.WaitSignal(t, subs[registry.TopicAgents], "agents subscriber after reconnecting")
		assert.NotEqual(t, pids, listeners(t, admin), "a new session")
	}

	// A notification the store does not know, as a newer version might
	// send, wakes every topic.
	_, err = admin.Exec(ctx, `SELECT pg_notify('spiffekit_registry', 'not-a-topic')`)
	require.NoError(t, err)
	for _, topic := range topics {
		registrytest.WaitSignal(t, subs[topic], topic.String()+" subscriber after an unknown notification")
	}
}

// logRecorder is a slog.Handler that passes the messages of records on a
// channel.
type logRecorder struct{ msgs chan<- slog.Record }

func (l logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecorder) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.msgs <- r:
	default:
	}
	return nil
}
func (l logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecorder) WithGroup(string) slog.Handler      { return l }

// TestPostgresListenerRetries keeps the listener from connecting, checks
// that Run logs its failures and keeps trying, and then that it connects
// once it can.
func TestPostgresListenerRetries(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.New(t)
	logs := make(chan slog.Record, 100)
	s, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn, Logger: slog.New(logRecorder{logs})})
	require.NoError(t, err)
	defer s.Close()
	admin, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer admin.Close(context.Background())
	// A database's connections are allowed or not from another database.
	conf, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	db := pgx.Identifier{conf.Database}.Sanitize()
	conf.Database = "postgres"
	other, err := pgx.ConnectConfig(ctx, conf)
	require.NoError(t, err)
	defer other.Close(context.Background())
	_, err = other.Exec(ctx, `ALTER DATABASE `+db+` ALLOW_CONNECTIONS false`)
	require.NoError(t, err)

	sub, cancelSub := s.Subscribe(allTopics)
	defer cancelSub()
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { assert.ErrorIs(t, s.Run(runCtx), context.Canceled) })
	for i := range 3 {
		select {
		case r := <-logs:
			assert.Equal(t, slog.LevelWarn, r.Level, "failure %d", i)
		case <-time.After(registrytest.SignalWait):
			t.Fatalf("failure %d was not logged", i)
		}
	}
	// The store still signals its own writes while Run cannot listen.
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org"), Document: []byte(`{"keys":[]}`)})
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "subscriber of the store's own write")

	_, err = other.Exec(ctx, `ALTER DATABASE `+db+` ALLOW_CONNECTIONS true`)
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "subscriber once the listener connects")
	require.Eventually(t, func() bool { return len(listeners(t, admin)) == 1 }, registrytest.SignalWait, 10*time.Millisecond)
	// A write by anyone, even plain SQL, is told of.
	_, err = admin.Exec(ctx, `DELETE FROM registry_bundles`)
	require.NoError(t, err)
	registrytest.WaitSignal(t, sub, "subscriber of a write in plain SQL")
}

// TestPostgresRunTwice checks that a second Run is refused while one runs.
func TestPostgresRunTwice(t *testing.T) {
	s := openPostgres(t, pgtest.New(t))
	defer s.Close()
	run(t, s)
	require.EqualError(t, s.Run(t.Context()), "sqlstore: Run is already running")
}
