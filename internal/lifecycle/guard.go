package lifecycle

import (
	"context"
	"sync"
)

// Runs says how many times a [Guard] admits a Run.
type Runs uint8

const (
	// Once admits one Run in the life of the Guard's owner.
	Once Runs = iota
	// OneAtATime admits a Run whenever none is under way.
	OneAtATime
)

// A Guard orders the Run and the Close of its owner: [Guard.Begin] admits
// a Run until [Guard.Close], and gives it a context that Close cancels;
// Close waits for the Run under way to end. A Guard is safe for concurrent
// use; make one with [NewGuard].
type Guard struct {
	runs      Runs
	closedErr error
	busyErr   error
	closed    chan struct{} // closed by the first Close

	// mu orders each admission (wg.Add) before Close sets isClosed and
	// waits, as sync.WaitGroup requires.
	mu       sync.Mutex
	isClosed bool
	begun    bool               // a Run was admitted: under way, or (Once) ever
	cancel   context.CancelFunc // the Run's under way, if any
	wg       sync.WaitGroup     // the Run under way
}

// NewGuard returns a Guard that admits runs Runs. Its Begin fails with
// closed after Close, and with busy when it admits no more Runs.
func NewGuard(runs Runs, closed, busy error) *Guard {
	return &Guard{runs: runs, closedErr: closed, busyErr: busy, closed: make(chan struct{})}
}

// Begin admits a Run. It returns a context derived from ctx that Close
// cancels, and done, which the Run calls (once) when it ends: done cancels
// the context and lets Close return. Begin fails, admitting nothing, with
// the Guard's closed error after Close, and with its busy error while
// another Run is under way or, for a Guard of [Once], after one was
// admitted; it then returns ctx and a done that does nothing.
func (g *Guard) Begin(ctx context.Context) (_ context.Context, done func(), _ error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.isClosed:
		return ctx, func() {}, g.closedErr
	case g.begun:
		return ctx, func() {}, g.busyErr
	}
	g.begun = true
	ctx, cancel := context.WithCancel(ctx)
	g.cancel = cancel
	g.wg.Add(1)
	return ctx, func() {
		cancel()
		g.mu.Lock()
		g.cancel = nil
		g.begun = g.runs == Once
		g.mu.Unlock()
		g.wg.Done()
	}, nil
}

// Close makes Begin fail from now on, closes the channel [Guard.Closed]
// returns and cancels the context of the Run under way, if any; then it
// waits for that Run to call its done. Close is idempotent and safe for
// concurrent use; every call waits.
func (g *Guard) Close() {
	g.mu.Lock()
	cancel := g.cancel
	if !g.isClosed {
		g.isClosed = true
		close(g.closed)
	}
	g.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	g.wg.Wait()
}

// Closed returns a channel that the first Close closes.
func (g *Guard) Closed() <-chan struct{} { return g.closed }
