package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/spiffekit/spiffekit/registry"
)

// DefaultPollInterval is how often [Store.Run] reads a MySQL database's
// change counters unless [Config.PollInterval] says otherwise.
const DefaultPollInterval = 50 * time.Millisecond

// mysqlConfig parses a go-sql-driver DSN and sets what the store relies
// on, whatever the DSN says:
//   - strict SQL mode, so that a value too long for its column is an
//     error and not truncated;
//   - affected rows that count changed rows, not matched ones: an upsert
//     of a duplicate that changes nothing reports 0 (see CreateToken);
//   - one statement per query, and no time parsing: times are integers;
//   - placeholders interpolated by the driver, which saves a round trip
//     per statement and is safe with the utf8mb4 connection charset the
//     driver uses by default (it refuses to interpolate under charsets
//     where it is not).
func mysqlConfig(dsn string) (*mysql.Config, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: parsing MySQL DSN: %w", err)
	}
	if mc.DBName == "" {
		return nil, errors.New("sqlstore: MySQL DSN names no database (user:password@tcp(host:3306)/database)")
	}
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["sql_mode"] = "'TRADITIONAL'"
	mc.ClientFoundRows = false
	mc.MultiStatements = false
	mc.ParseTime = false
	mc.InterpolateParams = true
	return mc, nil
}

// mysqlSchema is the whole schema on MySQL, created by migration 1: the
// dialect came with schema version 6, so no MySQL database has an older
// one, and migrations 2 to 6 have nothing left to do there. MySQL commits
// each DDL statement on its own, so the statements are idempotent: a
// migration cut short is completed by the next Open.
//
// Byte strings are binary (VARBINARY, BLOB), compared byte by byte, so
// that the database orders keys as Go does, with no collation and no
// trailing-space padding. Indexed columns are VARBINARY of the maximum
// length the registry validates (registry.MaxIDLen for SPIFFE IDs, within
// InnoDB's 3072 bytes for a key), but selectors, over 8 kB long at most,
// which are BLOBs indexed by a prefix; the others are BLOBs.
//
// registry_locks holds the row that entry writers lock first (see
// mysqlDialect). registry_changes holds a counter per notification topic
// that triggers increment in the transaction of every write, whoever
// writes; [Store.Run] polls them (see the package documentation).
var mysqlSchema = []string{
	`CREATE TABLE IF NOT EXISTS registry_entries (
		id VARBINARY(64) NOT NULL PRIMARY KEY,
		spiffe_id VARBINARY(2048) NOT NULL,
		parent_id VARBINARY(2048) NOT NULL,
		hint VARBINARY(1024) NOT NULL,
		similarity VARBINARY(64) NOT NULL UNIQUE,
		revision BIGINT NOT NULL,
		data LONGBLOB NOT NULL,
		INDEX registry_entries_spiffe_id (spiffe_id),
		INDEX registry_entries_parent_id (parent_id)) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_selectors (
		entry_id VARBINARY(64) NOT NULL,
		selector BLOB NOT NULL,
		INDEX registry_selectors_entry_id (entry_id),
		INDEX registry_selectors_selector (selector(255))) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_federates_with (
		entry_id VARBINARY(64) NOT NULL,
		trust_domain VARBINARY(255) NOT NULL,
		PRIMARY KEY (entry_id, trust_domain)) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_events (
		seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
		op SMALLINT NOT NULL,
		entry_id VARBINARY(64) NOT NULL,
		before_data LONGBLOB,
		after_data LONGBLOB) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_agents (
		id VARBINARY(2048) NOT NULL PRIMARY KEY,
		attestor_type BLOB NOT NULL,
		selectors LONGBLOB NOT NULL,
		serial_number BLOB NOT NULL,
		previous_serial_number BLOB NOT NULL,
		expires_at BIGINT NOT NULL,
		can_reattest SMALLINT NOT NULL,
		banned SMALLINT NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_join_tokens (
		id VARBINARY(64) NOT NULL PRIMARY KEY,
		secret_hash BLOB NOT NULL,
		agent_id LONGBLOB NOT NULL,
		expires_at BIGINT NOT NULL,
		INDEX registry_join_tokens_expires_at (expires_at)) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_bundles (
		trust_domain VARBINARY(255) NOT NULL PRIMARY KEY,
		document LONGBLOB NOT NULL,
		updated_at BIGINT NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_server_bundles (
		server_id VARBINARY(255) NOT NULL PRIMARY KEY,
		document LONGBLOB NOT NULL,
		expires_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		authorities LONGBLOB NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_authority_marks (
		kind VARBINARY(16) NOT NULL,
		authority_id VARBINARY(256) NOT NULL,
		server_id BLOB NOT NULL,
		revoked SMALLINT NOT NULL,
		expires_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (kind, authority_id)) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_federation_relationships (
		trust_domain VARBINARY(255) NOT NULL PRIMARY KEY,
		bundle_endpoint_url BLOB NOT NULL,
		bundle_endpoint_profile BLOB NOT NULL,
		endpoint_spiffe_id BLOB NOT NULL,
		trust_domain_bundle LONGBLOB NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL) ENGINE=InnoDB`,
	`CREATE TABLE IF NOT EXISTS registry_locks (
		name VARBINARY(64) NOT NULL PRIMARY KEY) ENGINE=InnoDB`,
	`INSERT INTO registry_locks (name) VALUES ('registry_events') ON DUPLICATE KEY UPDATE name = name`,
	`CREATE TABLE IF NOT EXISTS registry_changes (
		topic VARBINARY(32) NOT NULL PRIMARY KEY,
		version BIGINT NOT NULL) ENGINE=InnoDB`,
	`INSERT INTO registry_changes (topic, version) VALUES ('entries', 0), ('agents', 0), ('bundles', 0), ('authorities', 0), ('federation', 0)
		ON DUPLICATE KEY UPDATE version = version`,
}

// mysqlTriggers are the triggers of migration 1 on MySQL, after
// mysqlSchema: each increments its topic's counter in registry_changes,
// in the writing transaction. A MySQL trigger has one event, hence one per
// table and event; topic names are those of topicNames.
func mysqlTriggers() []string {
	var out []string
	add := func(table, topic string, events ...string) {
		for _, ev := range events {
			name := fmt.Sprintf("%s_%s_notify", table, map[string]string{"INSERT": "ins", "UPDATE": "upd", "DELETE": "del"}[ev])
			out = append(out,
				`DROP TRIGGER IF EXISTS `+name,
				fmt.Sprintf(`CREATE TRIGGER %s AFTER %s ON %s FOR EACH ROW UPDATE registry_changes SET version = version + 1 WHERE topic = '%s'`,
					name, ev, table, topic))
		}
	}
	add("registry_events", "entries", "INSERT")
	add("registry_agents", "agents", "INSERT", "UPDATE", "DELETE")
	add("registry_bundles", "bundles", "INSERT", "UPDATE", "DELETE")
	add("registry_server_bundles", "authorities", "INSERT", "UPDATE", "DELETE")
	add("registry_authority_marks", "authorities", "INSERT", "UPDATE", "DELETE")
	add("registry_federation_relationships", "federation", "INSERT", "UPDATE", "DELETE")
	return out
}

// mysqlMigrationLock is the name of the MySQL user lock (GET_LOCK) that
// serialises the migrations of the processes sharing a database.
const mysqlMigrationLock = "spiffekit_registry_migrations"

// migrateMySQL brings a MySQL schema up to date on one connection that
// holds the migration lock: MySQL commits DDL statements one by one, so
// the migrations cannot share a transaction (see mysqlSchema).
func (s *Store) migrateMySQL(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(?, 300)`, mysqlMigrationLock).Scan(&got); err != nil {
		return fmt.Errorf("waiting for other servers' migrations: %w", err)
	}
	if got.Int64 != 1 {
		return errors.New("waiting for other servers' migrations: the lock was not granted within 300 s")
	}
	// The lock is the session's: released here, or when the connection
	// closes if this fails.
	defer func() { _, _ = conn.ExecContext(context.WithoutCancel(ctx), `DO RELEASE_LOCK(?)`, mysqlMigrationLock) }()
	if err := createMigrationsTable(ctx, conn); err != nil {
		return err
	}
	return s.applyMigrations(ctx, conn)
}

// putAgentMySQL is PutAgent's upsert on MySQL, which has no RETURNING: the
// stored creation time and ban are read back in the same transaction,
// which holds the row's lock.
func (s *Store) putAgentMySQL(ctx context.Context, args []any, id string) (created, banned int64, err error) {
	err = s.inTx(ctx, "", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_agents (`+agentColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE
				attestor_type = VALUES(attestor_type),
				selectors = VALUES(selectors),
				serial_number = VALUES(serial_number),
				previous_serial_number = VALUES(previous_serial_number),
				expires_at = VALUES(expires_at),
				can_reattest = VALUES(can_reattest),
				banned = CASE WHEN banned <> 0 THEN banned ELSE VALUES(banned) END,
				updated_at = VALUES(updated_at)`, args...); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT created_at, banned FROM registry_agents WHERE id = ?`, id).Scan(&created, &banned)
	})
	return created, banned, err
}

// updateAgentMySQL is UpdateAgent on MySQL: the row is read and locked
// first, so that a row deleted meanwhile is not found rather than
// recreated, and then updated. It returns sql.ErrNoRows if there is no
// row.
func (s *Store) updateAgentMySQL(ctx context.Context, args []any, id string, ban int64) (created, banned int64, err error) {
	err = s.inTx(ctx, "", func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT created_at, banned FROM registry_agents WHERE id = ? FOR UPDATE`, id).Scan(&created, &banned); err != nil {
			return err
		}
		if banned == 0 {
			banned = ban
		}
		_, err := tx.ExecContext(ctx, `UPDATE registry_agents SET
				attestor_type = ?,
				selectors = ?,
				serial_number = ?,
				previous_serial_number = ?,
				expires_at = ?,
				can_reattest = ?,
				banned = CASE WHEN banned <> 0 THEN banned ELSE ? END,
				updated_at = ?
			WHERE id = ?`, args...)
		return err
	})
	return created, banned, err
}

// putAuthorityMarkMySQL is PutAuthorityMark's upsert on MySQL, with the
// stored revocation read back in the same transaction.
func (s *Store) putAuthorityMarkMySQL(ctx context.Context, args []any, kind, id string) (revoked int64, err error) {
	err = s.inTx(ctx, "", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_authority_marks (kind, authority_id, server_id, revoked, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE server_id = VALUES(server_id),
				revoked = CASE WHEN revoked <> 0 THEN 1 ELSE VALUES(revoked) END,
				expires_at = VALUES(expires_at), updated_at = VALUES(updated_at)`, args...); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT revoked FROM registry_authority_marks WHERE kind = ? AND authority_id = ?`, kind, id).Scan(&revoked)
	})
	return revoked, err
}

// updateRelationshipMySQL is UpdateFederationRelationship on MySQL: the
// row is read and locked first, then updated. It returns sql.ErrNoRows if
// there is no row.
func (s *Store) updateRelationshipMySQL(ctx context.Context, args []any, td string) (created int64, err error) {
	err = s.inTx(ctx, "", func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, `SELECT created_at FROM registry_federation_relationships WHERE trust_domain = ? FOR UPDATE`, td).Scan(&created); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE registry_federation_relationships
			SET bundle_endpoint_url = ?, bundle_endpoint_profile = ?, endpoint_spiffe_id = ?, trust_domain_bundle = ?, updated_at = ?
			WHERE trust_domain = ?`, args...)
		return err
	})
	return created, err
}

// pollChanges runs one polling session on MySQL: it reads the change
// counters, signals every topic, then reads them every s.poll and signals
// the topics whose counter moved, until a read fails or ctx is done.
// While it runs, the store's own writes are signalled by the poll like
// every other process's (see signal).
func (s *Store) pollChanges(ctx context.Context) error {
	defer s.listening.Store(false)
	seen, err := s.readChanges(ctx)
	if err != nil {
		return err
	}
	s.listening.Store(true)
	s.log.Info("polling the MySQL change counters", "interval", s.poll)
	s.topics.Notify(uint64(allTopics))
	timer := time.NewTimer(s.poll)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		now, err := s.readChanges(ctx)
		if err != nil {
			return err
		}
		var moved registry.Topic
		for name, v := range now {
			if seen[name] == v {
				continue
			}
			t, ok := topicNames[name]
			if !ok {
				t = allTopics // counted by a newer version: look at everything
			}
			moved |= t
		}
		if moved != 0 {
			s.topics.Notify(uint64(moved))
		}
		seen = now
		timer.Reset(s.poll)
	}
}

// readChanges reads every topic's change counter, within pingTimeout.
func (s *Store) readChanges(ctx context.Context) (map[string]int64, error) {
	qctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	rows, err := s.db.QueryContext(qctx, `SELECT topic, version FROM registry_changes`)
	if err != nil {
		return nil, fmt.Errorf("reading the change counters: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var v int64
		if err := rows.Scan(&name, &v); err != nil {
			return nil, fmt.Errorf("reading the change counters: %w", err)
		}
		out[name] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the change counters: %w", err)
	}
	return out, nil
}

// mysqlDeadlock is MySQL's ER_LOCK_DEADLOCK: InnoDB chose this statement's
// transaction as the victim of a deadlock and rolled it back. Concurrent
// INSERT ... SELECT statements on one table can meet so (gap locks); the
// statement is to be run again.
const mysqlDeadlock = 1213

// isDeadlock reports whether err is MySQL's deadlock error.
func isDeadlock(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == mysqlDeadlock
}

// execRetrying runs one statement in its own transaction (autocommit),
// again up to 4 more times, after a short pause, while MySQL picks it as
// a deadlock's victim: a rolled-back single statement is safe to repeat.
func (s *Store) execRetrying(ctx context.Context, query string, args ...any) (sql.Result, error) {
	for attempt := 1; ; attempt++ {
		res, err := s.db.ExecContext(ctx, query, args...)
		if err == nil || !isDeadlock(err) || attempt == 5 {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Duration(attempt) * 5 * time.Millisecond):
		}
	}
}
