// Package sqlstore is the SQL backend of the registry: a [registry.Store] on
// SQLite, the embedded default (one file, pure Go, no cgo), or on PostgreSQL
// or MySQL (MariaDB), for a registry shared by several servers.
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
// [registry.ServerBundleStore]; and the federation relationships, as a
// [registry.FederationStore]. Each of their writes is one statement;
// [Store.DeleteToken] is a single DELETE whose affected-row count decides
// which of several racing servers consumed a join token.
//
// For PostgreSQL, set Dialect to [PostgreSQL] and DSN to a pgx connection
// string such as "postgres://spiffekit@db/registry?sslmode=verify-full".
// For MySQL 8.0 or later, or MariaDB 10.5 or later, set Dialect to [MySQL]
// and DSN to a github.com/go-sql-driver/mysql data source name such as
// "spiffekit:secret@tcp(db:3306)/registry?tls=true". The user needs the
// privileges to create tables and triggers in the database (on a server
// with binary logging, creating triggers also takes SUPER, or
// log_bin_trust_function_creators=1).
//
// # Notifications
//
// The store is a [registry.Notifier]. Every write of entries, agents,
// federated bundles, server bundles, authority marks or federation
// relationships made through the store signals the
// subscribers of its topic once it has committed. On PostgreSQL, triggers
// also send a notification (channel spiffekit_registry, the topic's name
// as payload) in the transaction of every such write, by any process,
// which the database delivers at commit; [Store.Run] listens for them on a
// connection of its own, so that a write through one server wakes the
// subscribers on every server sharing the database, within about a
// millisecond on a local network:
//
//	store, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn, Logger: log})
//	if err != nil {
//		return err
//	}
//	defer store.Close()
//	go func() { errc <- store.Run(ctx) }() // until ctx is done
//
// Open starts nothing. Run reconnects with backoff when its connection
// fails and then signals every topic, so that consumers catch up on what
// they may have missed; consumers keep a slow poll as a safety net all the
// same. On SQLite, which cannot tell other processes' writes, Run only
// waits for its context.
//
// MySQL has no LISTEN/NOTIFY. There, the table registry_changes holds a
// counter per topic, and triggers increment the topic's counter in the
// transaction of every such write, by any process; the increment becomes
// visible when the write commits, never before. Run reads the counters
// (a row per topic) every [Config.PollInterval], 50 ms unless
// set, and signals the topics whose counter moved. A counter, unlike a log
// of changes read by sequence, cannot be passed over by a reader while a
// transaction that took an earlier sequence number is still open, needs
// no pruning, and costs a poll the same however many writes there were. A
// write through one server thus wakes the subscribers on every server
// within the poll interval and a query (BenchmarkNotifyAcrossStores
// measures it; see docs/PERFORMANCE.md). Writers of one topic wait for
// each other's commit on its counter row; entry writes are serialized
// anyway (each first locks a row, so that the change feed commits in
// sequence order), and the node-side writes are single rows.
package sqlstore
