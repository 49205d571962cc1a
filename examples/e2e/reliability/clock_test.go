package reliability_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	spiffeserver "github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// clock is the clock of a host whose time is stepped: the real time plus
// an offset.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time       { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) step(d time.Duration) { c.offset.Add(int64(d)) }
func (c *clock) String() string       { return fmt.Sprintf("%+v", time.Duration(c.offset.Load())) }
func (c *clock) valid(s *x509svid.SVID) bool {
	now := c.Now()
	leaf := s.Certificates[0]
	return !now.Before(leaf.NotBefore) && now.Before(leaf.NotAfter)
}

// TestClockStepped steps the clock of a server and an agent (both in this
// process, on real sockets, with the clock injected: the host's clock is
// never touched) an hour forward, then an hour back, while a workload
// fetches its X509-SVIDs, one stream per fetch and on one stream kept
// open. The lifetimes are longer than the step, as they must be for an
// agent whose SVID would otherwise expire in it: 4 h CAs, 3 h agent SVIDs,
// 30 min X509-SVIDs, which the step forward outlives. After each step:
// nothing crashed, no X509-SVID served on a new stream is expired at the
// new time, and the workload is soon served, on a new stream and on the
// one kept open, an X509-SVID valid at the new time that verifies against
// the bundle, signed by a CA the rotation keeps valid. (The SVID the open
// stream holds at the moment of the step may be expired by it: no one can
// help that; it must be replaced.) The long campaign steps
// forward and back 20 times.
func TestClockStepped(t *testing.T) {
	clk := &clock{}
	s := nodetest.StartServer(t, spiffeserver.Config{
		Stores:       spiffeserver.StoresOf(memstore.New(memstore.Config{Now: clk.Now})),
		CATTL:        4 * time.Hour,
		X509SVIDTTL:  30 * time.Minute,
		AgentSVIDTTL: 3 * time.Hour,
		Now:          clk.Now,
	})
	cfg := s.AgentConfig(t)
	cfg.Now = clk.Now
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	src, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(a.Addr)))
	require.NoError(t, err)
	defer src.Close()

	var mu sync.Mutex
	served, expired := 0, 0
	check := func(what string, svid *x509svid.SVID) {
		mu.Lock()
		defer mu.Unlock()
		served++
		if !clk.Now().Before(svid.Certificates[0].NotAfter) {
			expired++
			t.Errorf("%s served an X509-SVID expired at %s (clock %s): serial %s, not after %s", what,
				clk.Now().Format(time.RFC3339), clk, svid.Certificates[0].SerialNumber.Text(16), svid.Certificates[0].NotAfter.Format(time.RFC3339))
		}
	}
	n := runs(t, 1, 20)
	steps := 0
	for range n {
		for _, step := range []time.Duration{time.Hour, -time.Hour} {
			steps++
			clk.step(step)
			t.Logf("clock stepped %+v", step)
			var last string
			ok := assert.Eventually(t, func() bool {
				fctx, fcancel := context.WithTimeout(t.Context(), 5*time.Second)
				defer fcancel()
				svid, err := workloadapi.FetchX509SVID(fctx, workloadapi.WithAddr(a.Addr))
				if err != nil {
					last = err.Error()
					return false
				}
				leaf := svid.Certificates[0]
				last = fmt.Sprintf("serial %s valid %s to %s at %s", leaf.SerialNumber.Text(16), leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339), clk.Now().Format(time.RFC3339))
				check("a new stream", svid)
				_, _, err = x509svid.Verify(svid.Certificates, s.Bundle(), x509svid.WithTime(clk.Now()))
				if err != nil {
					last += ": " + err.Error()
				}
				kept, kerr := src.GetX509SVID()
				return err == nil && clk.valid(svid) && kerr == nil && clk.valid(kept)
			}, nodetest.Timeout, 50*time.Millisecond)
			if !ok {
				t.Fatalf("after the step of %+v, no X509-SVID valid at the new time; the last: %s", step, last)
			}
			require.NotNil(t, s.CA().X509Authority(), "the server has an active CA")
			active := s.CA().X509Authority().Certificate()
			assert.False(t, clk.Now().Before(active.NotBefore), "the active CA is valid at the new time")
			assert.True(t, clk.Now().Before(active.NotAfter), "the active CA is valid at the new time")
			require.NoError(t, a.Healthy(), "the agent")
			require.NoError(t, s.Healthy(t.Context()), "the server")
		}
	}
	report(t, "%d steps (+1h, -1h, ...); %d X509-SVIDs served, %d expired; after every step an SVID valid at the new time was served, from a valid CA; the server and the agent kept running", steps, served, expired)
}
