package agent_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// countingProxy forwards TCP connections to a server and counts those the
// agent made, and those it holds open.
type countingProxy struct {
	addr     string
	accepted atomic.Int64 // connections the agent made
	open     atomic.Int64 // connections the agent has not closed
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	p.addr = startProxy(t, func(set *connSet, c net.Conn) {
		p.accepted.Add(1)
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		set.add(c, up)
		p.open.Add(1)
		set.wg.Go(func() {
			defer p.open.Add(-1)
			defer up.Close()
			copyConn(up, c) // until the agent closes its end
		})
		set.wg.Go(func() {
			defer c.Close()
			copyConn(c, up)
		})
	})
	return p
}

func copyConn(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// holdingObserver holds the server's JWT-SVID signings, once armed, until
// released: a signing call in flight for as long as the test wants.
type holdingObserver struct {
	armed   atomic.Bool
	held    chan struct{} // receives when a signing is held
	release chan struct{} // closed to let the held signings go
	once    sync.Once
}

func newHoldingObserver(t *testing.T) *holdingObserver {
	o := &holdingObserver{held: make(chan struct{}, 1), release: make(chan struct{})}
	t.Cleanup(o.letGo)
	return o
}

func (o *holdingObserver) letGo() { o.once.Do(func() { close(o.release) }) }

func (*holdingObserver) RPC(string, codes.Code, time.Duration) {}
func (*holdingObserver) NodeAttested(string, string)           {}
func (o *holdingObserver) Signed(svidType string, _ time.Duration, _ error) {
	if svidType != "jwt" || !o.armed.Load() {
		return
	}
	select {
	case o.held <- struct{}{}:
	default:
	}
	<-o.release
}

// Property: the renewal of the agent SVID does not fail the calls in
// flight to the server: a signing call made over the old connection is
// answered there, and the old connection is closed once it is; the server
// sees the new SVID meanwhile (the entry stream moves to the new
// connection at once, and the previous SVID is retired), and updates keep
// coming over the new connection.
func TestRenewalLetsCallsInFlightFinish(t *testing.T) {
	obs := newHoldingObserver(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{Edit: func(c *nodeserver.Config) { c.Observer = obs }})
	p := newCountingProxy(t, s.Addr)
	cfg := s.AgentConfig(t)
	cfg.Servers = []string{p.addr}
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSynced(t)
	a.WaitSVID(t, web.SPIFFEID) // served: held (WaitEntries) is not enough
	require.Eventually(t, func() bool { return p.open.Load() == 1 }, nodetest.Timeout, 10*time.Millisecond,
		"the agent holds one connection to the server")

	// A workload asks for a JWT-SVID; the server holds the signing.
	obs.armed.Store(true)
	ctx, cancel := context.WithTimeout(t.Context(), nodetest.Timeout)
	defer cancel()
	type fetched struct {
		svid *jwtsvid.SVID
		err  error
	}
	got := make(chan fetched, 1)
	go func() {
		svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"}, workloadapi.WithAddr(a.Addr))
		got <- fetched{svid, err}
	}()
	select {
	case <-obs.held:
	case <-ctx.Done():
		t.Fatal("the JWT-SVID signing did not reach the server")
	}

	// The agent renews its SVID meanwhile.
	old := serial(a)
	require.NoError(t, a.Renew(ctx))
	renewed := serial(a)
	require.NotEqual(t, old, renewed)

	// The server sees the new SVID while the call is in flight: the entry
	// stream reconnected with it, which retired the previous one.
	require.Eventually(t, func() bool {
		rec, err := s.Store.GetAgent(ctx, a.ID())
		return err == nil && rec.SerialNumber == renewed && rec.PreviousSerialNumber == ""
	}, nodetest.Timeout, 10*time.Millisecond, "the server did not see the renewed SVID")
	require.Eventually(t, func() bool { return a.Stats().Connected }, nodetest.Timeout, 10*time.Millisecond)
	assert.Equal(t, int64(2), p.open.Load(), "the old connection stays open while a call is in flight on it")

	// The call in flight is answered over the old connection.
	obs.letGo()
	r := <-got
	require.NoError(t, r.err, "the call in flight during the renewal failed")
	assert.Equal(t, "/web", r.svid.ID.Path())

	// Then the old connection is closed, and the new one carries on.
	require.Eventually(t, func() bool { return p.open.Load() == 1 }, nodetest.Timeout, 10*time.Millisecond,
		"the old connection was not closed once its call was answered")
	s.Register(t, a.ID(), "/late")
	a.WaitEntries(t, 2)
}
