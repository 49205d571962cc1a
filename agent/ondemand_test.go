package agent_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// signedX509 is how many X509-SVIDs obs was told were signed.
func signedX509(obs *observed) int {
	n := 0
	for line, c := range obs.snapshot() {
		var ok, asked int
		if _, err := fmt.Sscanf(line, "signed x509 %d/%d", &ok, &asked); err == nil {
			n += ok * c
		}
	}
	return n
}

// An agent minting on demand signs only the SVIDs of the workloads that
// ask, not one for each of its entries as by default; with a cache bound,
// that many ahead of need, and the caller's.
func TestMintOnDemand(t *testing.T) {
	const others = 20
	for _, tc := range []struct {
		onDemand bool
		limit    int
	}{{false, 0}, {true, 0}, {false, 5}} {
		onDemand, limit := tc.onDemand, tc.limit
		t.Run(fmt.Sprintf("on_demand=%v,cache=%d", onDemand, limit), func(t *testing.T) {
			s := startServer(t)
			obs := &observed{}
			cfg := s.AgentConfig(t)
			cfg.IssuerObserver, cfg.MintOnDemand, cfg.X509SVIDCacheMaxSize = obs, onDemand, limit
			a := nodetest.StartAgent(t, cfg)
			for i := range others {
				_, err := s.Store.Create(t.Context(), registry.Entry{
					SPIFFEID:  spiffeid.RequireFromPath(td, fmt.Sprintf("/other/%d", i)),
					ParentID:  a.ID(),
					Selectors: []attest.Selector{{Type: "unix", Value: fmt.Sprintf("uid:%d", 20000+i)}},
				})
				require.NoError(t, err)
			}
			web := s.Register(t, a.ID(), "/web")
			a.WaitEntries(t, others+1)
			// A fetch while the agent holds the entry but does not serve it
			// yet is refused, and mints nothing.
			assert.Equal(t, web.SPIFFEID, a.WaitSVID(t, web.SPIFFEID).ID)
			if onDemand {
				assert.Equal(t, 1, signedX509(obs), "only the caller's SVID: %v", obs.snapshot())
				return
			}
			if limit > 0 {
				// The first entries by ID, and the caller's if not among them.
				all, _, err := s.Store.List(t.Context(), registry.Filter{ByParentID: a.ID()}, registry.Page{})
				require.NoError(t, err)
				slices.SortFunc(all, func(x, y registry.Entry) int { return strings.Compare(x.ID, y.ID) })
				want := limit
				if !slices.ContainsFunc(all[:limit], func(e registry.Entry) bool { return e.ID == web.ID }) {
					want++
				}
				require.Eventually(t, func() bool { return signedX509(obs) == want }, 20*time.Second, 5*time.Millisecond,
					"%d entries' SVIDs ahead of need, and the caller's: %v", limit, obs.snapshot())
				return
			}
			require.Eventually(t, func() bool { return signedX509(obs) == others+1 }, 20*time.Second, 5*time.Millisecond,
				"every entry's SVID ahead of need: %v", obs.snapshot())
		})
	}
}
