package nodebench

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// fetchSetup is a server and a real agent serving the Workload API on a
// unix socket, with one entry for this process's uid, already minted.
type fetchSetup struct {
	e    *env
	a    *nodetest.Agent
	addr string
	id   spiffeid.ID
}

func newFetchSetup(tb testing.TB) *fetchSetup {
	tb.Helper()
	e := newEnv(tb, envConfig{DBDir: shmDir(tb)})
	a := e.newAgent(tb, nil)
	en := createEntries(tb, e.store, a.ID(), "/fetch", 1, ourUID)[0]
	e.waitIndexed(tb)
	waitSynced(tb, a, 30*time.Second)
	waitFor(tb, 30*time.Second, "the agent holds the entry", func() bool { return a.Stats().Entries == 1 })
	addr := a.Addr
	s := &fetchSetup{e: e, a: a, addr: addr, id: en.SPIFFEID}
	s.fetchNew(tb) // the first fetch waits for the pre-mint
	return s
}

// fetchNew is one FetchX509SVID on a new connection.
func (s *fetchSetup) fetchNew(tb testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(s.addr))
	if err != nil {
		tb.Error(err)
		return
	}
	if svid.ID != s.id {
		tb.Errorf("fetched %s, want %s", svid.ID, s.id)
	}
}

// fetchReused is one FetchX509SVID on a client's existing connection.
func (s *fetchSetup) fetchReused(tb testing.TB, c *workloadapi.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svid, err := c.FetchX509SVID(ctx)
	if err != nil {
		tb.Error(err)
		return
	}
	if svid.ID != s.id {
		tb.Errorf("fetched %s, want %s", svid.ID, s.id)
	}
}

func (s *fetchSetup) client(tb testing.TB) *workloadapi.Client {
	tb.Helper()
	c, err := workloadapi.New(tb.Context(), workloadapi.WithAddr(s.addr))
	require.NoError(tb, err)
	tb.Cleanup(func() { c.Close() })
	return c
}

// run makes n fetches from each of clients goroutines, each goroutine
// with its own client when reuse is set, and records each round trip.
func (s *fetchSetup) run(tb testing.TB, clients, n int, reuse bool) *durations {
	var d durations
	var wg sync.WaitGroup
	for range clients {
		var c *workloadapi.Client
		if reuse {
			c = s.client(tb)
			s.fetchReused(tb, c) // connect before timing
		}
		wg.Go(func() {
			for range n {
				start := time.Now()
				if reuse {
					s.fetchReused(tb, c)
				} else {
					s.fetchNew(tb)
				}
				d.add(time.Since(start))
			}
		})
	}
	wg.Wait()
	return &d
}

func TestFetchThroughAgent(t *testing.T) {
	s := newFetchSetup(t)
	for _, reuse := range []bool{false, true} {
		d := s.run(t, 3, 3, reuse)
		require.Len(t, d.d, 9)
		require.Positive(t, d.percentile(99))
	}
}

// BenchmarkFetchX509SVID measures Workload API FetchX509SVID round trips
// against a node agent: "new-conn" dials the socket for every fetch
// (workloadapi.FetchX509SVID), "reused" keeps one workloadapi.Client per
// goroutine. clients=N runs N goroutines at once; one op is one fetch.
// Percentiles are over every fetch of the run.
func BenchmarkFetchX509SVID(b *testing.B) {
	s := newFetchSetup(b)
	for _, mode := range []struct {
		name  string
		reuse bool
	}{{"new-conn", false}, {"reused", true}} {
		for _, clients := range []int{1, 50} {
			b.Run(mode.name+"/clients="+strconv.Itoa(clients), func(b *testing.B) {
				b.ReportAllocs()
				per := max(1, b.N/clients)
				b.ResetTimer()
				d := s.run(b, clients, per, mode.reuse)
				b.StopTimer()
				d.report(b)
			})
		}
	}
}
