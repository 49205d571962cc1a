package issuer_test

import (
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// BenchmarkRegistryChangeToStream measures the time from a registry write
// (a new entry for the caller, in a memstore, which notifies the issuer) to
// the caller's open Workload API stream receiving the SVID it grants: the
// attestation-free path of the embedded issuer, minting included.
func BenchmarkRegistryChangeToStream(b *testing.B) {
	e := newEnv(b, issuer.Config{})
	e.serve(b)
	c := e.client(b)
	e.register(b, registry.Entry{SPIFFEID: webID, Hint: "web"})
	w := watch(b, c)
	w.next(b)

	i := 0
	for b.Loop() {
		i++
		id := spiffeid.RequireFromPath(td, "/bench/"+strconv.Itoa(i))
		_, err := e.store.Create(b.Context(), registry.Entry{
			SPIFFEID: id, ParentID: parentID, Selectors: []attest.Selector{ourUID}, Hint: "b" + strconv.Itoa(i),
		})
		require.NoError(b, err)
		for {
			u := w.next(b)
			if svidByHint(u.SVIDs, "b"+strconv.Itoa(i)) != nil {
				break
			}
		}
	}
}

// nopObserver is an issuer.Observer that does nothing: what the issuer's
// accounting costs, without the cost of any metrics library.
type nopObserver struct{}

func (nopObserver) Signed(string, int, int, time.Duration) {}
func (nopObserver) WorkloadAttested(string, time.Duration) {}

// BenchmarkObserver measures what Config.Observer adds to a JWT-SVID
// request that is signed, not served from the cache (each asks for a new
// audience): the caller's attestation and the signing, each observed.
func BenchmarkObserver(b *testing.B) {
	for _, o := range []struct {
		name string
		o    issuer.Observer
	}{{"none", nil}, {"nop", nopObserver{}}} {
		b.Run("FetchJWTSVIDs/observer="+o.name, func(b *testing.B) {
			e := newEnv(b, issuer.Config{Observer: o.o})
			e.register(b, registry.Entry{SPIFFEID: webID})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				if _, err := e.iss.FetchJWTSVIDs(b.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{strconv.Itoa(i)}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// registerN registers n entries for this process, /w0 to /w(n-1).
func registerN(b *testing.B, e *env, n int) {
	for k := range n {
		e.register(b, registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/w"+strconv.Itoa(k))})
	}
}

// BenchmarkSubscribe measures the issuer's share of one Workload API fetch
// of X509-SVIDs, without the transport: attest the caller (attest/unix,
// without hashing the executable), find its entries, make its view and
// Snapshot, encode it as the server does (Validate), close.
func BenchmarkSubscribe(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run("entries="+strconv.Itoa(n), func(b *testing.B) {
			e := newEnv(b, issuer.Config{})
			registerN(b, e, n)
			b.ReportAllocs()
			for b.Loop() {
				sub, err := e.iss.Subscribe(b.Context(), self())
				if err != nil {
					b.Fatal(err)
				}
				if snap := sub.Snapshot(); len(snap.RawX509SVIDs) != n || snap.Validate() != nil {
					b.Fatalf("a snapshot of %d SVIDs, want %d: %v", len(snap.RawX509SVIDs), n, snap.Validate())
				}
				sub.Close()
			}
		})
	}
}

// BenchmarkFetchX509SVID measures one FetchX509SVID round trip of the
// workloadapi client over the issuer's Workload API socket (one entry, its
// SVID cached, one connection): open the stream, receive and parse the
// SVID, end the stream.
func BenchmarkFetchX509SVID(b *testing.B) {
	e := newEnv(b, issuer.Config{})
	e.serve(b)
	e.register(b, registry.Entry{SPIFFEID: webID})
	c := e.client(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.FetchX509SVID(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFetchJWTSVID is BenchmarkFetchX509SVID for a JWT-SVID of one
// audience, served from the issuer's cache after the first.
func BenchmarkFetchJWTSVID(b *testing.B) {
	e := newEnv(b, issuer.Config{})
	e.serve(b)
	e.register(b, registry.Entry{SPIFFEID: webID})
	c := e.client(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.FetchJWTSVID(b.Context(), jwtsvid.Params{Audience: "bench"}); err != nil {
			b.Fatal(err)
		}
	}
}

// mintCount is an issuer.Observer counting the X509-SVIDs minted.
type mintCount struct{ n atomic.Int64 }

func (m *mintCount) Signed(kind string, n, failed int, _ time.Duration) {
	if kind == "x509" {
		m.n.Add(int64(n - failed))
	}
}
func (*mintCount) WorkloadAttested(string, time.Duration) {}

// BenchmarkPreMintMemory measures the live heap an issuer keeps per entry
// with Config.PreMint, as a node agent runs it: 10,000 entries, each of
// another workload (a selector of its own), each with its X509-SVID
// pre-minted. B/entry is the heap growth from before New (the registry
// already filled) to after every SVID is minted, over the entries: the
// issuer's index of the registry, its SVIDs and their bookkeeping. Run with
// -benchtime=1x.
func BenchmarkPreMintMemory(b *testing.B) {
	const n = 10000
	for range b.N {
		store := memstore.New(memstore.Config{})
		in := make([]registry.Entry, n)
		for k := range in {
			in[k] = registry.Entry{
				SPIFFEID:  spiffeid.RequireFromPath(td, "/pre/w"+strconv.Itoa(k)),
				ParentID:  parentID,
				Selectors: []attest.Selector{{Type: "unix", Value: "uid:" + strconv.Itoa(100000+k)}},
			}
		}
		for len(in) > 0 {
			k := min(len(in), registry.MaxBatch)
			_, err := store.CreateBatch(b.Context(), in[:k])
			require.NoError(b, err)
			in = in[k:]
		}
		var minted mintCount
		before := liveHeap()
		e := newEnv(b, issuer.Config{Registry: store, PreMint: true, Observer: &minted})
		require.Eventually(b, func() bool { return minted.n.Load() >= n }, 5*time.Minute, 10*time.Millisecond)
		after := liveHeap()
		b.ReportMetric(float64(int64(after)-int64(before))/n, "B/entry")
		runtime.KeepAlive(e)
	}
}

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
