package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spiffekit/spiffekit/registry"
)

const (
	// notifyChannel is the PostgreSQL channel of the notifications that
	// the triggers of schema versions 4 to 6 send; the payload names a topic.
	notifyChannel = "spiffekit_registry"
	// ListenerApplicationName is the application_name of the listener's
	// PostgreSQL session (see [Store.Run]), unless the DSN sets one; it
	// finds the session in pg_stat_activity.
	ListenerApplicationName = "spiffekit registry listener"

	allTopics = registry.TopicEntries | registry.TopicAgents | registry.TopicBundles | registry.TopicAuthorities | registry.TopicFederation

	// The listener reconnects after min to max backoff, doubled after each
	// failure and jittered; a session that lasted longer than maxBackoff
	// resets it.
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// pingEvery is how long the listener waits for a notification before
	// checking that its connection still answers, within pingTimeout: a
	// connection lost without a word would otherwise hide every write
	// until TCP noticed. Connecting and LISTEN are bounded by pingTimeout
	// too.
	pingEvery   = 30 * time.Second
	pingTimeout = 10 * time.Second
)

// topicNames maps the payloads the triggers send to topics. The names are
// part of the schema: never change one.
var topicNames = map[string]registry.Topic{
	"entries":     registry.TopicEntries,
	"agents":      registry.TopicAgents,
	"bundles":     registry.TopicBundles,
	"authorities": registry.TopicAuthorities,
	"federation":  registry.TopicFederation,
}

// Subscribe implements [registry.Notifier]. The channel receives a value
// after a write of one of topics, once the write has committed:
//   - made through this Store, on any database. The store signals it
//     before the write method returns, except while [Store.Run] listens on
//     PostgreSQL or polls MySQL: the write then comes back as a
//     notification, or a moved counter, like every other process's, and
//     is signalled once, when it arrives;
//   - on PostgreSQL and MySQL, while Run runs, made by any process (any
//     other Store) sharing the database: the notification is sent in the
//     writing transaction and delivered at its commit; the counter is
//     incremented in it and read by the next poll after the commit. Run
//     also signals every topic after it (re)connects, since writes may
//     have gone unseen.
//
// On SQLite, writes made through another Store, in this process or
// another, are not signalled.
func (s *Store) Subscribe(topics registry.Topic) (changes <-chan struct{}, cancel func()) {
	return s.topics.Subscribe(uint64(topics))
}

// signal tells the subscribers of t of a committed write made through this
// store, unless the listener will: the database then notifies the write to
// the listener's session, which has been listening since before the
// listening flag was set. A notification lost with that session is made up
// for by the signal of every topic after reconnecting.
func (s *Store) signal(t registry.Topic) {
	if s.listening.Load() {
		return
	}
	s.topics.Notify(uint64(t))
}

// Run tells the store's subscribers of the writes other processes make,
// until ctx is done; it then returns ctx.Err(). It returns an error at once
// if another call of Run has not returned.
//
// On PostgreSQL, Run holds a connection of its own (application_name
// [ListenerApplicationName] unless the DSN sets one) that LISTENs for the
// notifications every write sends in its transaction, and signals the
// subscribers of each notification's topic. After connecting, and after
// each reconnection, it signals every topic, so that consumers catch up
// from the change feed or by reading the records again. When the
// connection fails, or stops answering the ping Run sends after 30 seconds
// without a notification, Run reconnects after a jittered backoff of 0.1
// to 5 seconds, logging the failure to [Config.Logger]. While Run is
// connected, the store's own writes reach its subscribers through the
// database like every other write.
//
// On MySQL, Run reads the change counters (see the package documentation)
// every [Config.PollInterval] through the store's pool and signals the
// topics whose counter moved. After its first read, and after each read
// that follows a failure, it signals every topic. When a read fails (or
// takes longer than 10 seconds), Run logs it and tries again after the
// same backoff as on PostgreSQL. While Run polls successfully, the store's
// own writes reach its subscribers through the counters too.
//
// On SQLite, which has no notifications between processes, Run only waits
// for ctx; the store signals its own writes with or without it.
//
// [Open] starts nothing: the caller runs Run in a goroutine it owns, and
// cancels ctx to stop it. [Store.Close] does not stop Run.
func (s *Store) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sqlstore: Run is already running")
	}
	defer s.running.Store(false)
	session, what := s.listen, "listening for PostgreSQL notifications"
	switch {
	case s.dialect.mysql:
		session, what = s.pollChanges, "polling the MySQL change counters"
	case !s.dialect.postgres:
		<-ctx.Done()
		return ctx.Err()
	}
	backoff := minBackoff
	for {
		start := time.Now()
		err := session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2)
		s.log.Warn(what+" failed; retrying", "err", err, "retry_in", wait)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listen runs one listener session: it connects, LISTENs, signals every
// topic, then turns notifications into signals until the connection fails
// or ctx is done.
func (s *Store) listen(ctx context.Context) error {
	conf := s.pg.Copy()
	if _, ok := conf.RuntimeParams["application_name"]; !ok {
		conf.RuntimeParams["application_name"] = ListenerApplicationName
	}
	cctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, conf)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer func() {
		s.listening.Store(false)
		// The connection is closed politely if it still works; a dead one
		// is closed at once.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	cancel()
	s.listening.Store(true)
	s.log.Info("listening for PostgreSQL notifications")
	s.topics.Notify(uint64(allTopics))
	for {
		wctx, cancel := context.WithTimeout(ctx, pingEvery)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			t, ok := topicNames[n.Payload]
			if !ok {
				t = allTopics // written by a newer version: look at everything
			}
			s.topics.Notify(uint64(t))
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, pingTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("pinging: %w", err)
			}
		default:
			return fmt.Errorf("waiting for notifications: %w", err)
		}
	}
}
