// Package sqlstore is the SQL backend of the registry: a [registry.Store] on
// SQLite, the embedded default (one file, pure Go, no cgo), or on PostgreSQL,
// for a registry shared by several servers.
//
// Every write and the change-feed event that records it commit in one
// transaction, so the feed never misses or invents a change. The schema is
// created and migrated when the store is opened; a database whose schema is
// newer than this code knows is refused.
//
//	store, err := sqlstore.Open(ctx, sqlstore.Config{
//		Dialect: sqlstore.SQLite,
//		DSN:     "/var/lib/spiffekit/registry.db",
//	})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	entry, err := store.Create(ctx, registry.Entry{...})
//
// The store also keeps the node-side records: it is a
// [registry.AgentStore], [registry.TokenStore], [registry.BundleStore] and
// [registry.ServerBundleStore]. Each of their writes is one statement;
// [Store.DeleteToken] is a single DELETE whose affected-row count decides
// which of several racing servers consumed a join token.
//
// For PostgreSQL, set Dialect to [PostgreSQL] and DSN to a pgx connection
// string such as "postgres://spiffekit@db/registry?sslmode=verify-full".
package sqlstore
