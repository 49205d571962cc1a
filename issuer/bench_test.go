package issuer_test

import (
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
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
