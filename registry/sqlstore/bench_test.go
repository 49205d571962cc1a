package sqlstore_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/spiffekit/spiffekit/attest"
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
	}
}

// BenchmarkCreate measures one write (entry, selectors and event in one
// transaction).
func BenchmarkCreate(b *testing.B) {
	for _, name := range []string{"memstore", "sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			s := backends(b)[name](b)
			i := 0
			for b.Loop() {
				if _, err := s.Create(b.Context(), benchEntry(i)); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkList measures reading 1,000 of 10,000 entries in pages of 100 by
// parent, and reports entries per second.
func BenchmarkList(b *testing.B) {
	for _, name := range []string{"memstore", "sqlite", "postgres"} {
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
