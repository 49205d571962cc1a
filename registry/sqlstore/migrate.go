package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// migrations are applied in order; migration i brings the schema to version
// i+1. Never edit one that has shipped: append a new one. On MySQL,
// migration 1 creates the schema of version 6 (see mysqlSchema); later
// ones must be written for it too, as idempotent statements.
var migrations = []func(d dialect) []string{
	func(d dialect) []string {
		if d.mysql {
			return append(append([]string(nil), mysqlSchema...), mysqlTriggers()...)
		}
		return []string{
			`CREATE TABLE registry_entries (
				id TEXT PRIMARY KEY,
				spiffe_id TEXT NOT NULL,
				parent_id TEXT NOT NULL,
				hint TEXT NOT NULL,
				similarity TEXT NOT NULL UNIQUE,
				revision BIGINT NOT NULL,
				data TEXT NOT NULL)`,
			`CREATE INDEX registry_entries_spiffe_id ON registry_entries (spiffe_id)`,
			`CREATE INDEX registry_entries_parent_id ON registry_entries (parent_id)`,
			`CREATE TABLE registry_selectors (
				entry_id TEXT NOT NULL,
				selector TEXT NOT NULL,
				PRIMARY KEY (entry_id, selector))`,
			`CREATE INDEX registry_selectors_selector ON registry_selectors (selector)`,
			`CREATE TABLE registry_federates_with (
				entry_id TEXT NOT NULL,
				trust_domain TEXT NOT NULL,
				PRIMARY KEY (entry_id, trust_domain))`,
			`CREATE TABLE registry_events (
				seq ` + d.serial + `,
				op SMALLINT NOT NULL,
				entry_id TEXT NOT NULL,
				before_data TEXT,
				after_data TEXT)`,
		}
	},
	// Version 2: the node-side records (registry.AgentStore, TokenStore,
	// BundleStore, ServerBundleStore). Times are microseconds since the Unix
	// epoch, which compare correctly in every dialect.
	func(d dialect) []string {
		if d.mysql {
			return nil
		}
		return []string{
			`CREATE TABLE registry_agents (
				id ` + d.key + ` PRIMARY KEY,
				attestor_type TEXT NOT NULL,
				selectors TEXT NOT NULL,
				serial_number TEXT NOT NULL,
				previous_serial_number TEXT NOT NULL,
				expires_at BIGINT NOT NULL,
				can_reattest SMALLINT NOT NULL,
				banned SMALLINT NOT NULL,
				created_at BIGINT NOT NULL,
				updated_at BIGINT NOT NULL)`,
			`CREATE TABLE registry_join_tokens (
				id ` + d.key + ` PRIMARY KEY,
				secret_hash ` + d.blob + ` NOT NULL,
				agent_id TEXT NOT NULL,
				expires_at BIGINT NOT NULL)`,
			`CREATE INDEX registry_join_tokens_expires_at ON registry_join_tokens (expires_at)`,
			`CREATE TABLE registry_bundles (
				trust_domain ` + d.key + ` PRIMARY KEY,
				document ` + d.blob + ` NOT NULL,
				updated_at BIGINT NOT NULL)`,
			`CREATE TABLE registry_server_bundles (
				server_id ` + d.key + ` PRIMARY KEY,
				document ` + d.blob + ` NOT NULL,
				expires_at BIGINT NOT NULL,
				updated_at BIGINT NOT NULL)`,
		}
	},
	// Version 3: selectors as long as attest.MaxTypeLength and
	// attest.MaxValueLength allow (over 8 kB as text). A PostgreSQL B-tree
	// index refuses an entry longer than about 2.7 kB, so the selector is
	// indexed by hash there, and rows by entry ID; SQLite has no such limit.
	// Uniqueness of (entry_id, selector) is kept by the stores, which insert
	// an entry's validated, distinct selectors once.
	func(d dialect) []string {
		if !d.postgres {
			return nil
		}
		return []string{
			`ALTER TABLE registry_selectors DROP CONSTRAINT registry_selectors_pkey`,
			`DROP INDEX registry_selectors_selector`,
			`CREATE INDEX registry_selectors_entry_id ON registry_selectors (entry_id)`,
			`CREATE INDEX registry_selectors_selector ON registry_selectors USING hash (selector)`,
		}
	},
	// Version 4: on PostgreSQL, every write of entries (their events),
	// agents, bundles and server bundles sends a notification with its
	// topic's name on channel spiffekit_registry, in the writing transaction,
	// whoever writes (see Store.Run). Identical notifications of one
	// transaction are folded by PostgreSQL. SQLite has no such mechanism.
	func(d dialect) []string {
		if !d.postgres {
			return nil
		}
		return []string{
			`CREATE FUNCTION registry_notify() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN
				PERFORM pg_notify('spiffekit_registry', TG_ARGV[0]);
				RETURN NULL;
			END
			$$`,
			`CREATE TRIGGER registry_events_notify AFTER INSERT ON registry_events
				FOR EACH ROW EXECUTE FUNCTION registry_notify('entries')`,
			`CREATE TRIGGER registry_agents_notify AFTER INSERT OR UPDATE OR DELETE ON registry_agents
				FOR EACH ROW EXECUTE FUNCTION registry_notify('agents')`,
			`CREATE TRIGGER registry_bundles_notify AFTER INSERT OR UPDATE OR DELETE ON registry_bundles
				FOR EACH ROW EXECUTE FUNCTION registry_notify('bundles')`,
			`CREATE TRIGGER registry_server_bundles_notify AFTER INSERT OR UPDATE OR DELETE ON registry_server_bundles
				FOR EACH ROW EXECUTE FUNCTION registry_notify('authorities')`,
		}
	},
	// Version 5: each server's description of its authorities beside its
	// share of the bundle (JSON; empty in rows of earlier versions, for
	// none), and the operators' marks on authorities (taints and
	// revocations), whose writes notify 'authorities' on PostgreSQL.
	func(d dialect) []string {
		if d.mysql {
			return nil
		}
		stmts := []string{
			`ALTER TABLE registry_server_bundles ADD COLUMN authorities TEXT NOT NULL DEFAULT ''`,
			`CREATE TABLE registry_authority_marks (
				kind ` + d.key + ` NOT NULL,
				authority_id ` + d.key + ` NOT NULL,
				server_id TEXT NOT NULL,
				revoked SMALLINT NOT NULL,
				expires_at BIGINT NOT NULL,
				updated_at BIGINT NOT NULL,
				PRIMARY KEY (kind, authority_id))`,
		}
		if d.postgres {
			stmts = append(stmts, `CREATE TRIGGER registry_authority_marks_notify AFTER INSERT OR UPDATE OR DELETE ON registry_authority_marks
				FOR EACH ROW EXECUTE FUNCTION registry_notify('authorities')`)
		}
		return stmts
	},
	// Version 6: the federation relationships kept in the datastore
	// (registry.FederationStore), whose writes notify 'federation' on
	// PostgreSQL. An empty trust_domain_bundle is none.
	func(d dialect) []string {
		if d.mysql {
			return nil
		}
		stmts := []string{
			`CREATE TABLE registry_federation_relationships (
				trust_domain ` + d.key + ` PRIMARY KEY,
				bundle_endpoint_url TEXT NOT NULL,
				bundle_endpoint_profile TEXT NOT NULL,
				endpoint_spiffe_id TEXT NOT NULL,
				trust_domain_bundle ` + d.blob + ` NOT NULL,
				created_at BIGINT NOT NULL,
				updated_at BIGINT NOT NULL)`,
		}
		if d.postgres {
			stmts = append(stmts, `CREATE TRIGGER registry_federation_relationships_notify AFTER INSERT OR UPDATE OR DELETE ON registry_federation_relationships
				FOR EACH ROW EXECUTE FUNCTION registry_notify('federation')`)
		}
		return stmts
	},
}

// migrationLock is the PostgreSQL advisory lock key that serialises the
// migrations of the processes sharing a database.
const migrationLock = 0x7370_6966_6665_6b69 // "spiffeki"

// migrate brings the schema up to date in one transaction, so that a failed
// migration leaves the database as it was.
func (s *Store) migrate(ctx context.Context) error {
	if s.dialect.mysql {
		return s.migrateMySQL(ctx)
	}
	if s.dialect.postgres {
		// Servers started together on a new database would all create the
		// migrations table, and PostgreSQL's CREATE TABLE IF NOT EXISTS
		// fails against a concurrent one (a duplicate key in its catalog):
		// the first to take this lock creates it, the others wait.
		return s.inTx(ctx, "", func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
				return fmt.Errorf("waiting for other servers' migrations: %w", err)
			}
			if err := createMigrationsTable(ctx, tx); err != nil {
				return err
			}
			return s.applyMigrations(ctx, tx)
		})
	}
	if err := createMigrationsTable(ctx, s.db); err != nil {
		return err
	}
	return s.inTx(ctx, "registry_schema_migrations", func(tx *sql.Tx) error { return s.applyMigrations(ctx, tx) })
}

// execQueryer is what the migrations run on: a transaction, or on MySQL a
// connection.
type execQueryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// createMigrationsTable creates the table of applied migrations if it is
// missing.
func createMigrationsTable(ctx context.Context, db interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS registry_schema_migrations (
		version INTEGER PRIMARY KEY,
		applied_at TEXT NOT NULL)`); err != nil {
		return fmt.Errorf("creating the migrations table: %w", err)
	}
	return nil
}

// applyMigrations applies, in tx, the migrations the database lacks.
func (s *Store) applyMigrations(ctx context.Context, tx execQueryer) error {
	var version int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM registry_schema_migrations`).Scan(&version); err != nil {
		return fmt.Errorf("reading the schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than version %d, the latest this program knows; upgrade the program", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		for _, stmt := range migrations[v](s.dialect) {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("migrating to schema version %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.rebind(`INSERT INTO registry_schema_migrations (version, applied_at) VALUES (?, ?)`),
			v+1, s.now().UTC().Format("2006-01-02T15:04:05.000000Z")); err != nil {
			return fmt.Errorf("recording schema version %d: %w", v+1, err)
		}
	}
	return nil
}

// rebind turns the '?' placeholders of a query into the dialect's.
func (s *Store) rebind(q string) string {
	if !s.dialect.dollar {
		return q
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}
