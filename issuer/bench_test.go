package issuer_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
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
