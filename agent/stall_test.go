package agent_test

import (
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry/memstore"
)

// stallingProxy forwards TCP connections to a server until stall is
// called: from then on, the connections open at that moment carry nothing
// more either way and stay open, as a connection does over a link that a
// partition cut and that has healed before TCP sent again; connections
// made later are forwarded.
type stallingProxy struct {
	addr string

	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // to its stalled flag
}

func newStallingProxy(t *testing.T, target string) *stallingProxy {
	p := &stallingProxy{conns: map[net.Conn]*atomic.Bool{}}
	p.addr = startProxy(t, func(set *connSet, c net.Conn) {
		up, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		set.add(c, up)
		stalled := new(atomic.Bool)
		p.mu.Lock()
		p.conns[c], p.conns[up] = stalled, stalled
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer dst.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				if err != nil {
					return
				}
				if stalled.Load() {
					continue // lost on the way
				}
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		set.wg.Go(func() { pipe(up, c) })
		set.wg.Go(func() { pipe(c, up) })
	})
	return p
}

// stall stalls every connection open now.
func (p *stallingProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, stalled := range p.conns {
		stalled.Store(true)
	}
}

// newFarProxy forwards TCP connections to target, each only once hold has
// passed since it came: target stands for a server farther away than the
// others, whose handshakes take that much longer. It returns its address.
func newFarProxy(t *testing.T, target string, hold time.Duration) string {
	return startProxy(t, func(set *connSet, c net.Conn) {
		set.add(c)
		set.wg.Go(func() {
			defer c.Close()
			select {
			case <-time.After(hold):
			case <-set.stop:
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			set.add(up)
			defer up.Close()
			set.wg.Go(func() {
				io.Copy(up, c)
				up.Close()
			})
			io.Copy(c, up)
		})
	})
}

// connSet holds what a test proxy of startProxy opened: its connections
// and its goroutines, which end with the test.
type connSet struct {
	wg    sync.WaitGroup
	stop  chan struct{} // closed as the test ends
	mu    sync.Mutex
	conns []net.Conn
}

// add tracks connections, to be closed as the test ends.
func (s *connSet) add(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, cs...)
}

// startProxy listens on loopback and gives each connection it accepts to
// handle, in its accept loop: handle tracks the connections it opens with
// add and runs its goroutines on wg. As the test ends, stop is closed, the
// listener and every connection are closed, and the goroutines waited for.
// It returns the proxy's address.
func startProxy(t *testing.T, handle func(set *connSet, c net.Conn)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	set := &connSet{stop: make(chan struct{})}
	set.wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			handle(set, c)
		}
	})
	t.Cleanup(func() {
		close(set.stop)
		lis.Close()
		set.mu.Lock()
		for _, c := range set.conns {
			c.Close()
		}
		set.mu.Unlock()
		set.wg.Wait()
	})
	return lis.Addr().String()
}

// Property: a renewal of the agent SVID held up by a stalled connection
// is tried again over a new one, in time: the agent does not wait on a
// connection that may stay silent longer than its SVID has left.
func TestRenewalGetsPastAStalledConnection(t *testing.T) {
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{Edit: shortTTL(20 * time.Second)})
	p := newStallingProxy(t, s.Addr)
	cfg := s.AgentConfig(t)
	cfg.Servers = []string{p.addr}
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
	first := a.SVID().Certificates[0]
	p.stall()
	require.Eventually(t, func() bool { return serial(a) != first.SerialNumber.Text(16) },
		time.Until(first.NotAfter), 20*time.Millisecond, "the agent SVID was not renewed before it expired")
}

// cutOffReplicas are two replicas of one node server (one CA, one store)
// that issue agent SVIDs of 30 s, each reaching the agent records through
// its own nodetest.StuckStore: once that is stuck, the server answers, but cannot
// renew an agent SVID.
type cutOffReplicas struct {
	servers [2]*nodetest.NodeServer
	cuts    [2]*nodetest.StuckStore
	logs    *logtest.Buffer // the servers' and the agent's
}

// cutOffSVIDTTL is the agent SVIDs' life: renewed at half of it, with
// a renewal attempt taking at least minRenewAttempt (5 s), the agent has
// the time of the attempt on the server cut off and of two more after its
// failover, so a test process starved for seconds on a loaded machine
// still sees the failover it checks, not the end of the SVID.
const cutOffSVIDTTL = 30 * time.Second

func startCutOffReplicas(t *testing.T) *cutOffReplicas {
	t.Helper()
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	r := &cutOffReplicas{logs: &logtest.Buffer{}}
	for i := range r.servers {
		r.cuts[i] = &nodetest.StuckStore{Store: store}
		r.servers[i] = nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Edit: func(c *nodeserver.Config) {
			c.AgentSVIDTTL, c.Agents, c.Logger = cutOffSVIDTTL, r.cuts[i], r.logs.Logger().With("server", i)
		}})
	}
	return r
}

// renewsWhenCutOff runs an agent of the first server that knows the
// servers at addrs, cuts off the server it syncs with (the first, unless
// the second answered sooner) once it has synced, and checks that the
// agent renews its SVID before it expires.
func (r *cutOffReplicas) renewsWhenCutOff(t *testing.T, addrs ...string) {
	t.Helper()
	cfg := r.servers[0].AgentConfig(t)
	cfg.Servers, cfg.Logger = addrs, r.logs.Logger().With("agent", true)
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
	// The agent's calls go over the connection of its entry stream: the
	// server that holds the stream is the one the renewal goes to first.
	used := -1
	require.Eventually(t, func() bool {
		used = slices.IndexFunc(r.servers[:], func(s *nodetest.NodeServer) bool { return s.Stats().Streams == 1 })
		return used >= 0
	}, nodetest.Timeout, 5*time.Millisecond, "a server holds the agent's entry stream")
	first := a.SVID().Certificates[0]
	r.cuts[used].Stuck.Store(true)
	if !assert.Eventually(t, func() bool { return serial(a) != first.SerialNumber.Text(16) },
		time.Until(first.NotAfter), 20*time.Millisecond, "the agent SVID was not renewed before it expired") {
		t.Fatalf("server %d was cut off; what the servers and the agent logged:\n%s", used, r.logs)
	}
}

// Property: an agent whose server answers but cannot renew its SVID (its
// database is out of reach) renews through the next server in time: it
// does not stay with a server only because the connection to it works.
func TestRenewalFailsOverFromAServerCutOffFromItsStore(t *testing.T) {
	r := startCutOffReplicas(t)
	r.renewsWhenCutOff(t, r.servers[0].Addr, r.servers[1].Addr)
}

// Property: the failover of a renewal reaches the next server even when
// that one answers a handshake later than the server that failed: a
// connection tries its next address as well when one has not answered
// within a quarter of a second (gRPC's happy eyeballs) and takes the first
// to answer, so the server that failed must not be among its addresses.
func TestRenewalFailsOverToAFartherServer(t *testing.T) {
	r := startCutOffReplicas(t)
	r.renewsWhenCutOff(t, r.servers[0].Addr, newFarProxy(t, r.servers[1].Addr, time.Second))
}

// Property: an agent whose first server answers but cannot attest it (its
// database is out of reach: its store calls time out after 1 s, its
// attestations after 2 s) attests through the next server: attestation
// does not stay with a server only because the connection to it works.
func TestAttestationFailsOverFromAServerCutOffFromItsStore(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	cut := &nodetest.StuckStore{Store: store}
	s0 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: cut, Edit: func(c *nodeserver.Config) {
		c.Registry, c.StoreTimeout, c.AttestTimeout = store, time.Second, 2*time.Second
	}})
	cut.Stuck.Store(true)
	s1 := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	cfg := s1.AgentConfig(t)
	cfg.Servers = []string{s0.Addr, s1.Addr}
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
}

// Property: when the entry stream fails while a renewal is in flight on
// the same connection, the agent fails over once, not once per call: the
// renewal, cut by the move to the next server, is made again there, not
// back on the server it was held up on. Here that server (cut off from
// its database, so that the renewal waits) is stopped: it ends the entry
// stream at once and waits for the renewal to end.
func TestRenewalAndStreamFailOverOnce(t *testing.T) {
	r := startCutOffReplicas(t)
	proxies := [2]*countingProxy{newCountingProxy(t, r.servers[0].Addr), newCountingProxy(t, r.servers[1].Addr)}
	cfg := r.servers[0].AgentConfig(t)
	cfg.Servers, cfg.Logger = []string{proxies[0].addr, proxies[1].addr}, r.logs.Logger().With("agent", true)
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
	used := -1
	require.Eventually(t, func() bool {
		used = slices.IndexFunc(r.servers[:], func(s *nodetest.NodeServer) bool { return s.Stats().Streams == 1 })
		return used >= 0
	}, nodetest.Timeout, 5*time.Millisecond, "a server holds the agent's entry stream")
	first := a.SVID().Certificates[0]
	r.cuts[used].Stuck.Store(true)
	require.Eventually(t, func() bool { return r.cuts[used].Held("GetAgent") > 0 },
		time.Until(first.NotAfter), 5*time.Millisecond, "the renewal reaches the server cut off")
	before := proxies[used].accepted.Load()
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		r.servers[used].Stop()
	}()
	defer func() { <-stopped }()
	if !assert.Eventually(t, func() bool { return serial(a) != first.SerialNumber.Text(16) },
		time.Until(first.NotAfter), 20*time.Millisecond, "the agent SVID was not renewed before it expired") {
		t.Fatalf("server %d was cut off; what the servers and the agent logged:\n%s", used, r.logs)
	}
	if !assert.Equal(t, before, proxies[used].accepted.Load(), "connections to the server stopped") {
		t.Logf("server %d was cut off; what the servers and the agent logged:\n%s", used, r.logs)
	}
}
