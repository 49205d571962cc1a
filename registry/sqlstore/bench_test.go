package sqlstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func benchEntry(i int) registry.Entry {
	return registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/ns/%d/sa/%d", i%100, i)),
		ParentID:  spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/%d", i%50)),
		Selectors: []attest.Selector{{Type: "k8s", Value: fmt.Sprintf("ns:%d", i%100)}, {Type: "k8s", Value: fmt.Sprintf("sa:%d", i)}},
	}
}

func backends(b *testing.B) map[string]func(b *testing.B) registry.Store {
	return map[string]func(b *testing.B) registry.Store{
		"memstore": func(*testing.B) registry.Store { return memstore.New(memstore.Config{}) },
		"sqlite": func(b *testing.B) registry.Store {
			s, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(b.TempDir(), "r.db")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(b *testing.B) registry.Store {
			s, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: pgtest.New(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"mysql": func(b *testing.B) registry.Store {
			s, err := sqlstore.Open(b.Context(), sqlstore.Config{Dialect: sqlstore.MySQL, DSN: mysqltest.New(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// BenchmarkCreate measures one write (entry, selectors and event in one
// transaction), one after the other, and reports entries created per
// second.
func BenchmarkCreate(b *testing.B) {
	for _, name := range []string{"memstore", "sqlite", "postgres", "mysql"} {
		b.Run(name, func(b *testing.B) {
			s := backends(b)[name](b)
			i := 0
			for b.Loop() {
				if _, err := s.Create(b.Context(), benchEntry(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkList measures reading 1,000 of 10,000 entries in pages of 100 by
// parent, and reports entries per second.
func BenchmarkList(b *testing.B) {
	for _, name := range []string{"memstore", "sqlite", "postgres", "mysql"} {
		b.Run(name, func(b *testing.B) {
			s := backends(b)[name](b)
			for i := range 10_000 {
				if _, err := s.Create(b.Context(), benchEntry(i)); err != nil {
					b.Fatal(err)
				}
			}
			f := registry.Filter{ByParentID: spiffeid.RequireFromString("spiffe://example.org/agent/7")}
			n := 0
			for b.Loop() {
				token := ""
				for {
					page, next, err := s.List(b.Context(), f, registry.Page{Token: token, Size: 100})
					if err != nil {
						b.Fatal(err)
					}
					n += len(page)
					if next == "" {
						break
					}
					token = next
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkNotifyAcrossStores measures how long a write through one store
// takes to reach a subscriber of another store on the same database, as a
// write on one server reaches the others: from the start of the write to
// the subscriber's wake-up, through the write's commit and, on PostgreSQL,
// the notification and the listener of the other store, on MySQL the
// other store's next poll of the change counters (every 50 ms, the
// default; each write starts after a random pause within a poll interval).
// It reports the median and 99th percentile, and the write alone for
// comparison.
func BenchmarkNotifyAcrossStores(b *testing.B) {
	writes := map[string]func(ctx context.Context, s *sqlstore.Store, i int) error{
		"entries": func(ctx context.Context, s *sqlstore.Store, i int) error {
			_, err := s.Create(ctx, benchEntry(i))
			return err
		},
		"agents": func(ctx context.Context, s *sqlstore.Store, i int) error {
			_, err := s.PutAgent(ctx, registry.Agent{
				ID:           spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/%d", i)),
				AttestorType: "join_token",
			})
			return err
		},
	}
	topics := map[string]registry.Topic{"entries": registry.TopicEntries, "agents": registry.TopicAgents}
	databases := map[sqlstore.Dialect]func(testing.TB) string{sqlstore.PostgreSQL: pgtest.New, sqlstore.MySQL: mysqltest.New}
	for _, dialect := range []sqlstore.Dialect{sqlstore.PostgreSQL, sqlstore.MySQL} {
		for _, name := range []string{"entries", "agents"} {
			b.Run(string(dialect)+"/"+name, func(b *testing.B) { benchNotify(b, dialect, databases[dialect](b), writes[name], topics[name]) })
		}
	}
}

// benchNotify measures, for BenchmarkNotifyAcrossStores, one kind of write
// through one store to the wake-up of a subscriber of another on dsn.
func benchNotify(b *testing.B, dialect sqlstore.Dialect, dsn string, write func(ctx context.Context, s *sqlstore.Store, i int) error, topic registry.Topic) {
	ctx := b.Context()
	open := func() *sqlstore.Store {
		s, err := sqlstore.Open(ctx, sqlstore.Config{Dialect: dialect, DSN: dsn})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	writer, watcher := open(), open()
	changes, cancel := watcher.Subscribe(topic)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watcher.Run(runCtx) }()
	defer func() { stop(); <-done }()
	wait := func() {
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			b.Fatal("no signal within 10s")
		}
	}
	wait() // the listener is connected, or the poller has read the counters

	var total, written []time.Duration
	i := 0
	for b.Loop() {
		if dialect == sqlstore.MySQL {
			// A write right after a wake-up would start just after a poll
			// and always wait a whole interval: writes come at any point
			// of it.
			b.StopTimer()
			time.Sleep(rand.N(sqlstore.DefaultPollInterval))
			b.StartTimer()
		}
		start := time.Now()
		if err := write(ctx, writer, i); err != nil {
			b.Fatal(err)
		}
		w := time.Since(start)
		wait()
		total = append(total, time.Since(start))
		written = append(written, w)
		i++
	}
	ms := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(total, 0.50), "p50-ms")
	b.ReportMetric(ms(total, 0.99), "p99-ms")
	b.ReportMetric(ms(written, 0.50), "write-p50-ms")
}
