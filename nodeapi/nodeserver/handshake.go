package nodeserver

import (
	"container/list"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// DefaultHandshakeWait is the longest a TLS handshake waits for a turn
// (see Config.MaxHandshakes) before the server closes its connection. An
// agent gives up on a connection after 20 s (gRPC's minimum connect
// timeout): a handshake continued after that is work for nobody.
const DefaultHandshakeWait = 10 * time.Second

// defaultMaxHandshakes returns the default of Config.MaxHandshakes: two
// per CPU the Go runtime may use, enough to keep every core busy.
func defaultMaxHandshakes() int { return 2 * runtime.GOMAXPROCS(0) }

// errHandshakeWait is the error of a connection closed because its
// handshake's turn did not come within the wait.
var errHandshakeWait = errors.New("nodeserver: too many TLS handshakes at once; connection closed before its turn came")

// handshakeWarnEvery is the least time between two Warn lines of
// connections closed for want of a handshake turn: under a storm of
// them, one line a minute tells how many.
const handshakeWarnEvery = time.Minute

// errHandshakeStopped is the error of a connection closed because the
// server stopped while its handshake waited for a turn.
var errHandshakeStopped = errors.New("nodeserver: the server stopped during the TLS handshake")

// admission is transport credentials whose server handshakes compute a
// few at a time, handshakes already begun before those that begin.
//
// When every agent of a fleet connects at once (a server restart), doing
// all their handshakes at the same time makes each take as long as all of
// them together; past the agents' connect timeout every one is abandoned
// and begun again, and the server does nothing but handshakes no agent
// will use. Here a handshake holds a turn only while it computes: from the
// moment a read of its connection returns until it reads again or ends.
// Waiting on the network (an agent slow to answer, or a connection that
// never sends a byte) holds none, so slow or idle connections cannot keep
// others from their turn. Turns go first to the handshakes that already
// had one, so that what is begun is finished within a round trip or two
// while new connections wait; a wait longer than the admission's wait
// closes the connection (the agent retries after its backoff).
type admission struct {
	credentials.TransportCredentials
	turns   *turns
	wait    time.Duration
	stop    []<-chan struct{} // a closed one ends every wait
	refused *refusals         // of the connections whose turn did not come
}

// ServerHandshake performs the handshake of the wrapped credentials over
// conn, taking a turn after each read.
func (a *admission) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc := &turnConn{Conn: conn, a: a}
	c, info, err := a.TransportCredentials.ServerHandshake(tc)
	tc.handshaken()
	if err != nil && tc.err != nil {
		err = tc.err
	}
	return c, info, err
}

// Clone returns a copy sharing the turns: a clone does not add to them.
func (a *admission) Clone() credentials.TransportCredentials {
	return &admission{TransportCredentials: a.TransportCredentials.Clone(), turns: a.turns, wait: a.wait, stop: a.stop,
		refused: a.refused}
}

// turnConn is a connection being handshaken: its reads give back the
// handshake's turn and take one again. After the handshake it only
// passes through.
type turnConn struct {
	net.Conn
	a    *admission
	done atomic.Bool
	// Used by the handshake's goroutine alone.
	holding bool  // it holds a turn
	had     bool  // it held one before: its next turn goes first
	err     error // why a turn did not come
}

func (c *turnConn) Read(p []byte) (int, error) {
	if c.done.Load() {
		return c.Conn.Read(p)
	}
	if c.holding {
		c.holding = false
		c.a.turns.release()
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		return n, err
	}
	if c.err = c.a.turns.acquire(c.had, c.a.wait, c.a.stop); c.err != nil {
		if errors.Is(c.err, errHandshakeWait) {
			c.a.refused.add(c.RemoteAddr())
		}
		// Fail the handshake: the connection is closed by the caller.
		return 0, c.err
	}
	c.holding, c.had = true, true
	return n, nil
}

// handshaken ends the handshake: the turn held is given back, and reads
// pass through from then on.
func (c *turnConn) handshaken() {
	if c.holding {
		c.holding = false
		c.a.turns.release()
	}
	c.done.Store(true)
}

// turns is a counting semaphore with two queues of waiters: those that
// held a turn before go first.
type turns struct {
	mu    sync.Mutex
	free  int
	again list.List // of chan struct{}: waiters that held a turn before
	first list.List // of chan struct{}: waiters that never held one
}

func newTurns(n int) *turns { return &turns{free: n} }

// acquire takes a turn, waiting at most wait, or until a stop channel is
// closed. again puts the caller in the queue that goes first.
func (t *turns) acquire(again bool, wait time.Duration, stop []<-chan struct{}) error {
	t.mu.Lock()
	if t.free > 0 && t.again.Len() == 0 && (again || t.first.Len() == 0) {
		t.free--
		t.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	q := &t.first
	if again {
		q = &t.again
	}
	el := q.PushBack(ch)
	t.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var err error
	select {
	case <-ch:
		return nil
	case <-timer.C:
		err = errHandshakeWait
	case <-orNever(stop, 0):
		err = errHandshakeStopped
	case <-orNever(stop, 1):
		err = errHandshakeStopped
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	select {
	case <-ch:
		// Given a turn while giving up: hand it on.
		t.releaseLocked()
	default:
		q.Remove(el)
	}
	return err
}

// orNever returns stop[i], or a nil channel (never ready) when there is
// none.
func orNever(stop []<-chan struct{}, i int) <-chan struct{} {
	if i < len(stop) {
		return stop[i]
	}
	return nil
}

// release gives back a turn, to the first waiter of the queue that goes
// first, else of the other.
func (t *turns) release() {
	t.mu.Lock()
	t.releaseLocked()
	t.mu.Unlock()
}

func (t *turns) releaseLocked() {
	for _, q := range []*list.List{&t.again, &t.first} {
		if el := q.Front(); el != nil {
			q.Remove(el)
			close(el.Value.(chan struct{}))
			return
		}
	}
	t.free++
}

// refusals counts the connections closed because their handshake's turn
// did not come within the wait, and logs them: each at Debug, and at most
// one Warn line every handshakeWarnEvery, with how many there were since
// the last one. It is safe for concurrent use.
type refusals struct {
	log   *slog.Logger
	wait  time.Duration // Config.HandshakeWait
	turns int           // Config.MaxHandshakes
	now   func() time.Time
	total atomic.Uint64

	mu      sync.Mutex
	warned  time.Time // when the last Warn line was written; zero before
	pending uint64    // refusals since then
}

// add counts and logs the refusal of a connection from remote.
func (r *refusals) add(remote net.Addr) {
	total := r.total.Add(1)
	r.log.Debug("closed an agent's connection: its TLS handshake waited too long for a turn",
		"remote", remote, "wait", r.wait)
	r.mu.Lock()
	r.pending++
	now := r.now()
	if !r.warned.IsZero() && now.Sub(r.warned) < handshakeWarnEvery {
		r.mu.Unlock()
		return
	}
	count := r.pending
	r.warned, r.pending = now, 0
	r.mu.Unlock()
	r.log.Warn("too many TLS handshakes at once: closed agents' connections whose handshake waited too long for a turn; the agents retry after their backoff",
		"count", count, "total", total, "wait", r.wait, "max_handshakes", r.turns)
}

// count returns how many connections were refused so far.
func (r *refusals) count() uint64 { return r.total.Load() }
