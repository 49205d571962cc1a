package index

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// sliceSource is an in-memory Source without copying, so that benchmarks
// measure the index rather than a store.
type sliceSource struct{ entries []registry.Entry }

func (s *sliceSource) Get(context.Context, string) (registry.Entry, error) {
	return registry.Entry{}, registry.ErrNotFound
}

func (s *sliceSource) List(_ context.Context, _ registry.Filter, p registry.Page) ([]registry.Entry, string, error) {
	start := 0
	if p.Token != "" {
		fmt.Sscan(p.Token, &start)
	}
	end := min(len(s.entries), start+p.Size)
	next := ""
	if end < len(s.entries) {
		next = fmt.Sprint(end)
	}
	return s.entries[start:end], next, nil
}

func (s *sliceSource) Changes(context.Context, int64, int) ([]registry.Event, error) { return nil, nil }
func (s *sliceSource) Head(context.Context) (int64, error)                           { return 0, nil }

// synthetic returns n entries shaped like a Kubernetes cluster: 1,000 nodes,
// 100 namespaces, and three selectors per entry, two of them shared widely.
func synthetic(n int) []registry.Entry {
	now := time.Now().UTC()
	out := make([]registry.Entry, n)
	for i := range out {
		out[i] = registry.Entry{
			ID:       registry.NewEntryID(),
			SPIFFEID: spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/ns/%d/sa/%d", i%100, i)),
			ParentID: spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/%d", i%1000)),
			Selectors: []attest.Selector{
				{Type: "k8s", Value: fmt.Sprintf("ns:%d", i%100)},
				{Type: "k8s", Value: fmt.Sprintf("sa:%d", i)},
				{Type: "k8s", Value: "container-name:app"},
			},
			X509SVIDTTL: time.Hour,
			Revision:    1,
			CreatedAt:   now,
			UpdatedAt:   now,
		}
	}
	return out
}

func benchmarkBuild(b *testing.B, n int) {
	src := &sliceSource{entries: synthetic(n)}
	var before, after runtime.MemStats
	for b.Loop() {
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&before)
		b.StartTimer()
		x, err := New(b.Context(), src, Config{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/entry")
		runtime.KeepAlive(x)
		b.StartTimer()
	}
}

func BenchmarkBuild100k(b *testing.B) { benchmarkBuild(b, 100_000) }
func BenchmarkBuild1M(b *testing.B)   { benchmarkBuild(b, 1_000_000) }

// BenchmarkApply measures one incremental change (an update that moves an
// entry to other selectors) in an index of 1,000,000 entries.
func BenchmarkApply(b *testing.B) {
	entries := synthetic(1_000_000)
	x, err := New(b.Context(), &sliceSource{entries: entries}, Config{})
	if err != nil {
		b.Fatal(err)
	}
	seq := int64(0)
	i := 0
	for b.Loop() {
		e := entries[i%len(entries)]
		e.Revision += int64(i + 1)
		e.Selectors = []attest.Selector{{Type: "k8s", Value: "ns:7"}, {Type: "k8s", Value: fmt.Sprintf("sa:%d", i)}}
		seq++
		x.mu.Lock()
		x.apply(registry.Event{Seq: seq, Op: registry.OpUpdate, EntryID: e.ID, After: &e})
		x.mu.Unlock()
		i++
	}
}

// BenchmarkForWorkload measures a workload query in an index of 100,000
// entries: the caller's namespace selector is shared by 1,000 entries.
func BenchmarkForWorkload(b *testing.B) {
	x, err := New(b.Context(), &sliceSource{entries: synthetic(100_000)}, Config{})
	if err != nil {
		b.Fatal(err)
	}
	caller := []attest.Selector{
		{Type: "k8s", Value: "ns:42"}, {Type: "k8s", Value: "sa:4242"}, {Type: "k8s", Value: "container-name:app"}, {Type: "k8s", Value: "pod-uid:x"},
	}
	for b.Loop() {
		if got := x.ForWorkload(caller[:3]); len(got) != 1 {
			b.Fatalf("got %d entries", len(got))
		}
	}
}

// BenchmarkCountByParent measures the count of a parent's 10,000 entries
// (launches) among 100,000, which expire within an hour: before any has
// expired, and after all have but before a Sync took them out.
func BenchmarkCountByParent(b *testing.B) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := synthetic(100_000)
	launcher := spiffeid.RequireFromString("spiffe://example.org/launcher")
	for i := range 10_000 {
		entries[i].ParentID = launcher
		entries[i].ExpiresAt = t0.Add(time.Duration(i+1) * 360 * time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want int
	}{{"none-expired", t0, 10_000}, {"all-expired-unsynced", t0.Add(2 * time.Hour), 0}} {
		b.Run(tc.name, func(b *testing.B) {
			now := t0
			x, err := New(b.Context(), &sliceSource{entries: entries}, Config{Now: func() time.Time { return now }})
			if err != nil {
				b.Fatal(err)
			}
			now = tc.now
			for b.Loop() {
				if got := x.CountByParent(launcher); got != tc.want {
					b.Fatalf("got %d, want %d", got, tc.want)
				}
			}
		})
	}
}
