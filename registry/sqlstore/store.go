package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/registry"
)

// Dialect selects the database a [Store] talks to.
type Dialect string

const (
	// SQLite is an embedded database in one file (through the pure-Go
	// modernc.org/sqlite driver). [Config.DSN] is the file path.
	SQLite Dialect = "sqlite"
	// PostgreSQL is a PostgreSQL server, version 12 or later. [Config.DSN] is
	// a connection string or URL as accepted by pgx, e.g.
	// "postgres://user@host/db?sslmode=verify-full".
	PostgreSQL Dialect = "postgres"
	// MySQL is a MySQL server, version 8.0 or later, or a MariaDB server,
	// version 10.5 or later, through github.com/go-sql-driver/mysql.
	// [Config.DSN] is that driver's data source name, which must name a
	// database, e.g. "user:password@tcp(host:3306)/db?tls=true" or
	// "user@unix(/run/mysqld/mysqld.sock)/db".
	MySQL Dialect = "mysql"
)

// Config configures a [Store].
type Config struct {
	// Dialect is SQLite, PostgreSQL or MySQL; required.
	Dialect Dialect
	// DSN says where the database is; required. For SQLite it is a file path
	// without '?', created if missing; the store adds its own parameters.
	DSN string
	// Now returns the current time for entry and record timestamps; nil
	// means time.Now.
	Now func() time.Time
	// BusyTimeout is how long a SQLite write waits for another process's
	// write to finish; zero means 10 seconds. PostgreSQL ignores it.
	BusyTimeout time.Duration
	// PollInterval is how often [Store.Run] reads the change counters of a
	// MySQL database, which has no notifications (see the package
	// documentation); zero means [DefaultPollInterval]. The other
	// dialects ignore it.
	PollInterval time.Duration
	// Logger receives the failures and reconnections of the PostgreSQL
	// listener and of the MySQL poller (see [Store.Run]); nil discards them.
	Logger *slog.Logger
}

// dialect holds what differs between databases.
type dialect struct {
	serial string // the events sequence column
	dollar bool   // placeholders are $1, $2, ... instead of ?
	// lock, if not empty, is run first in every write transaction, with the
	// table name substituted for %s.
	lock string
	// blob is the column type of byte strings.
	blob string
	// key is the column type of text keys, compared byte by byte so that
	// the database orders them as Go does.
	key string
	// postgres is set for PostgreSQL, whose B-tree indexes refuse entries
	// longer than about 2.7 kB.
	postgres bool
	// mysql is set for MySQL and MariaDB, whose schema (see migrations)
	// and upserts are their own.
	mysql bool
}

var (
	sqliteDialect = dialect{serial: "INTEGER PRIMARY KEY AUTOINCREMENT", blob: "BLOB", key: "TEXT"}
	// PostgreSQL assigns sequence values at insert time, not at commit. Writers
	// take a table lock so that events commit in sequence order; otherwise a
	// reader could see event 6 before event 5 commits, and skip 5 forever.
	postgresDialect = dialect{serial: "BIGSERIAL PRIMARY KEY", dollar: true, lock: "LOCK TABLE %s IN EXCLUSIVE MODE",
		blob: "BYTEA", key: `TEXT COLLATE "C"`, postgres: true}
	// MySQL assigns AUTO_INCREMENT values at insert time too. LOCK TABLES
	// would commit the transaction, so writers lock a row of their own
	// instead (see migrations), which InnoDB holds until commit. Its
	// placeholders are '?'; its column types are in its migrations.
	mysqlDialect = dialect{lock: "SELECT name FROM registry_locks WHERE name = '%s' FOR UPDATE", mysql: true}
)

// Store is a [registry.Store] in a SQL database. It is safe for concurrent
// use, also by several processes sharing the database: writes are
// serialized by the database, and each write and its change-feed event
// commit in one transaction. It also implements the node-side stores of
// package registry (agents, join tokens, bundles), and is a
// [registry.Notifier] (see [Store.Subscribe] and [Store.Run]). It owns its
// connection pool; call Close.
type Store struct {
	db      *sql.DB
	dialect dialect
	now     func() time.Time
	log     *slog.Logger
	// pg is the parsed PostgreSQL DSN, from which the listener connects;
	// nil for SQLite.
	pg *pgx.ConnConfig
	// poll is how often Run reads a MySQL database's change counters.
	poll time.Duration

	topics broadcast.Topics
	// listening is true while Run holds a LISTEN session, or polls the
	// change counters: the store's own writes then reach its subscribers
	// as notifications, like every other process's, and are not
	// signalled a second time.
	listening atomic.Bool
	// running guards against concurrent calls of Run.
	running atomic.Bool

	// skipped counts the authorities and marks of unknown kinds left out
	// of lists; kindsLogged, guarded by kindsMu, the kinds logged.
	skipped     atomic.Uint64
	kindsMu     sync.Mutex
	kindsLogged map[registry.AuthorityKind]bool
}

var (
	_ registry.Store    = (*Store)(nil)
	_ registry.Notifier = (*Store)(nil)
)

// Open connects to the database, creates or migrates its schema (in one
// transaction) and returns the store. It refuses a database whose schema was
// written by a newer version of this package. ctx bounds opening only: Open
// starts nothing in the background (see [Store.Run]).
func Open(ctx context.Context, c Config) (*Store, error) {
	s := &Store{now: c.Now, log: c.Logger, poll: c.PollInterval}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.poll <= 0 {
		s.poll = DefaultPollInterval
	}
	switch c.Dialect {
	case SQLite:
		if c.DSN == "" || strings.ContainsAny(c.DSN, "?#") {
			return nil, errors.New("sqlstore: SQLite DSN must be a file path without '?' or '#'")
		}
		busy := c.BusyTimeout
		if busy <= 0 {
			busy = 10 * time.Second
		}
		// WAL lets readers run while one writer writes; BEGIN IMMEDIATE takes
		// the write lock up front, so that two writers never deadlock trying
		// to upgrade read locks.
		dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_txlock=immediate",
			c.DSN, busy.Milliseconds())
		db, err := sql.Open("sqlite", dsn)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: opening SQLite database: %w", err)
		}
		s.db, s.dialect = db, sqliteDialect
	case PostgreSQL:
		pc, err := pgx.ParseConfig(c.DSN)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: parsing PostgreSQL DSN: %w", err)
		}
		s.db, s.dialect, s.pg = stdlib.OpenDB(*pc), postgresDialect, pc
	case MySQL:
		mc, err := mysqlConfig(c.DSN)
		if err != nil {
			return nil, err
		}
		conn, err := mysql.NewConnector(mc)
		if err != nil {
			return nil, fmt.Errorf("sqlstore: MySQL DSN: %w", err)
		}
		s.db, s.dialect = sql.OpenDB(conn), mysqlDialect
	default:
		return nil, fmt.Errorf("sqlstore: unknown dialect %q", c.Dialect)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	return s, nil
}

// Close closes the connection pool. It is safe to call more than once. It
// does not stop [Store.Run]: cancel Run's context.
func (s *Store) Close() error {
	return s.db.Close()
}

// inTx runs fn in a write transaction and commits it if fn succeeds. The
// dialect's table lock, if any, is taken first on lockTable, unless empty.
func (s *Store) inTx(ctx context.Context, lockTable string, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if s.dialect.lock != "" && lockTable != "" {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(s.dialect.lock, lockTable)); err != nil {
			return fmt.Errorf("locking %s: %w", lockTable, err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// Create implements [registry.Writer].
func (s *Store) Create(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	chosenID := e.ID != ""
	e, err := registry.PrepareCreate(e, s.now())
	if err != nil {
		return registry.Entry{}, err
	}
	data, err := encode(e)
	if err != nil {
		return registry.Entry{}, err
	}
	err = s.inTx(ctx, "registry_events", func(tx *sql.Tx) error {
		if err := s.checkSimilar(ctx, tx, e); err != nil {
			return err
		}
		if chosenID {
			if err := s.checkIDFree(ctx, tx, e.ID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO registry_entries (id, spiffe_id, parent_id, hint, similarity, revision, data) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			e.ID, e.SPIFFEID.String(), e.ParentID.String(), e.Hint, similarity(e), e.Revision, data); err != nil {
			return fmt.Errorf("inserting entry: %w", err)
		}
		if err := s.insertSets(ctx, tx, e); err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, registry.OpCreate, e.ID, "", data)
	})
	if err != nil {
		return registry.Entry{}, wrap(err)
	}
	s.signal(registry.TopicEntries)
	return e, nil
}

// Update implements [registry.Writer].
func (s *Store) Update(ctx context.Context, e registry.Entry) (registry.Entry, error) {
	var out registry.Entry
	err := s.inTx(ctx, "registry_events", func(tx *sql.Tx) error {
		stored, oldData, err := s.get(ctx, tx, e.ID)
		if err != nil {
			return err
		}
		out, err = registry.PrepareUpdate(stored, e, s.now())
		if err != nil {
			return err
		}
		if err := s.checkSimilar(ctx, tx, out); err != nil {
			return err
		}
		data, err := encode(out)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`UPDATE registry_entries SET spiffe_id = ?, parent_id = ?, hint = ?, similarity = ?, revision = ?, data = ? WHERE id = ?`),
			out.SPIFFEID.String(), out.ParentID.String(), out.Hint, similarity(out), out.Revision, data, out.ID); err != nil {
			return fmt.Errorf("updating entry: %w", err)
		}
		if err := s.deleteSets(ctx, tx, out.ID); err != nil {
			return err
		}
		if err := s.insertSets(ctx, tx, out); err != nil {
			return err
		}
		return s.appendEvent(ctx, tx, registry.OpUpdate, out.ID, oldData, data)
	})
	if err != nil {
		return registry.Entry{}, wrap(err)
	}
	s.signal(registry.TopicEntries)
	return out, nil
}

// Delete implements [registry.Writer].
func (s *Store) Delete(ctx context.Context, id string, revision int64) (registry.Entry, error) {
	var out registry.Entry
	err := s.inTx(ctx, "registry_events", func(tx *sql.Tx) error {
		stored, data, err := s.get(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := registry.CheckDelete(stored, revision); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM registry_entries WHERE id = ?`), id); err != nil {
			return fmt.Errorf("deleting entry: %w", err)
		}
		if err := s.deleteSets(ctx, tx, id); err != nil {
			return err
		}
		out = stored
		return s.appendEvent(ctx, tx, registry.OpDelete, id, data, "")
	})
	if err != nil {
		return registry.Entry{}, wrap(err)
	}
	s.signal(registry.TopicEntries)
	return out, nil
}

func (s *Store) checkSimilar(ctx context.Context, tx *sql.Tx, e registry.Entry) error {
	var other string
	err := tx.QueryRowContext(ctx, s.rebind(`SELECT id FROM registry_entries WHERE similarity = ?`), similarity(e)).Scan(&other)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("looking for similar entries: %w", err)
	case other != e.ID:
		return fmt.Errorf("%w: %s", registry.ErrAlreadyExists, e.SPIFFEID)
	}
	return nil
}

// checkIDFree fails with registry.ErrAlreadyExists when an entry has the
// ID id, which a caller chose. Entry writes are serialized (see inTx), so
// that no other can take it before the insert.
func (s *Store) checkIDFree(ctx context.Context, tx *sql.Tx, id string) error {
	var n int
	if err := tx.QueryRowContext(ctx, s.rebind(`SELECT COUNT(*) FROM registry_entries WHERE id = ?`), id).Scan(&n); err != nil {
		return fmt.Errorf("looking for entry %s: %w", id, err)
	}
	if n > 0 {
		return fmt.Errorf("%w: entry ID %s is taken", registry.ErrAlreadyExists, id)
	}
	return nil
}

func (s *Store) insertSets(ctx context.Context, tx *sql.Tx, e registry.Entry) error {
	for _, sel := range e.Selectors {
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO registry_selectors (entry_id, selector) VALUES (?, ?)`), e.ID, sel.String()); err != nil {
			return fmt.Errorf("inserting selector: %w", err)
		}
	}
	for _, td := range e.FederatesWith {
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO registry_federates_with (entry_id, trust_domain) VALUES (?, ?)`), e.ID, td.Name()); err != nil {
			return fmt.Errorf("inserting federated trust domain: %w", err)
		}
	}
	return nil
}

func (s *Store) deleteSets(ctx context.Context, tx *sql.Tx, id string) error {
	for _, table := range []string{"registry_selectors", "registry_federates_with"} {
		if _, err := tx.ExecContext(ctx, s.rebind(`DELETE FROM `+table+` WHERE entry_id = ?`), id); err != nil {
			return fmt.Errorf("deleting from %s: %w", table, err)
		}
	}
	return nil
}

func (s *Store) appendEvent(ctx context.Context, tx *sql.Tx, op registry.Op, id, before, after string) error {
	if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO registry_events (op, entry_id, before_data, after_data) VALUES (?, ?, ?, ?)`),
		int64(op), id, nullable(before), nullable(after)); err != nil {
		return fmt.Errorf("appending event: %w", err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// similarity hashes registry.SimilarityKey, which can be longer than a
// database index accepts.
func similarity(e registry.Entry) string {
	sum := sha256.Sum256([]byte(registry.SimilarityKey(e)))
	return hex.EncodeToString(sum[:])
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// get reads one entry and its encoded form.
func (s *Store) get(ctx context.Context, q queryer, id string) (registry.Entry, string, error) {
	if !registry.ValidEntryID(id) {
		return registry.Entry{}, "", registry.NotFoundf("entry %q", truncate(id))
	}
	var data string
	err := q.QueryRowContext(ctx, s.rebind(`SELECT data FROM registry_entries WHERE id = ?`), id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return registry.Entry{}, "", registry.NotFoundf("entry %q", id)
	}
	if err != nil {
		return registry.Entry{}, "", fmt.Errorf("reading entry: %w", err)
	}
	e, err := decode(data)
	return e, data, err
}

// Get implements [registry.Reader].
func (s *Store) Get(ctx context.Context, id string) (registry.Entry, error) {
	e, _, err := s.get(ctx, s.db, id)
	if err != nil {
		return registry.Entry{}, wrap(err)
	}
	return e, nil
}

// wrap adds the package prefix to errors that do not come from registry.
func wrap(err error) error {
	if strings.HasPrefix(err.Error(), "registry: ") {
		return err
	}
	return fmt.Errorf("sqlstore: %w", err)
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
