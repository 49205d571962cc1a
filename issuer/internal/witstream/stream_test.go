package witstream

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
)

// base is a caller's view without WIT-SVIDs, as an issuer's subscription
// gives it: a test sets its snapshot and signals the change.
type base struct {
	snap    atomic.Pointer[endpoint.Snapshot]
	changed chan struct{}
	closed  atomic.Int32
}

func newBase() *base {
	b := &base{changed: make(chan struct{}, 1)}
	b.snap.Store(&endpoint.Snapshot{TrustDomain: td})
	return b
}

func (b *base) set(s *endpoint.Snapshot) {
	b.snap.Store(s)
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

func (b *base) Snapshot() *endpoint.Snapshot { return b.snap.Load() }
func (b *base) Changed() <-chan struct{}     { return b.changed }
func (b *base) Close()                       { b.closed.Add(1) }

// source answers Collect with what a test set, and counts the calls.
type source struct {
	mu    sync.Mutex
	wits  []endpoint.WITSVID
	next  time.Time
	err   error
	calls int
}

func (s *source) set(wits []endpoint.WITSVID, next time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wits, s.next, s.err = wits, next, err
}

func (s *source) collect(context.Context) ([]endpoint.WITSVID, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.wits, s.next, s.err
}

func (s *source) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

type fixture struct {
	base    *base
	src     *source
	taints  chan struct{}
	untaint atomic.Int32
	closed  chan struct{}
	log     *logtest.Buffer
	cfg     Config
}

func newFixture() *fixture {
	f := &fixture{base: newBase(), src: &source{}, taints: make(chan struct{}, 1), closed: make(chan struct{}), log: &logtest.Buffer{}}
	f.cfg = Config{
		Base: f.base, Collect: f.src.collect, Taints: f.taints, Untaint: func() { f.untaint.Add(1) },
		Closed: f.closed, Now: time.Now, Log: f.log.Logger(),
	}
	return f
}

func wit(token string) endpoint.WITSVID {
	return endpoint.WITSVID{ID: webID, Token: token, Key: "{}"}
}

// waitChanged waits for s to signal a change, and returns its snapshot.
func waitChanged(t *testing.T, s *Stream) *endpoint.Snapshot {
	t.Helper()
	select {
	case <-s.Changed():
	case <-time.After(10 * time.Second):
		t.Fatal("no change signalled")
	}
	return s.Snapshot()
}

func TestStreamServesTheBaseViewWithTheWITSVIDs(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	f.src.set([]endpoint.WITSVID{wit("t1")}, time.Now().Add(time.Hour), nil)
	s, err := Start(t.Context(), f.cfg)
	require.NoError(t, err)
	snap := waitChanged(t, s)
	require.Equal(t, td, snap.TrustDomain)
	require.Equal(t, []endpoint.WITSVID{wit("t1")}, snap.WITSVIDs)

	// A change of the base view is taken at once, with the WIT-SVIDs
	// collected again.
	f.src.set([]endpoint.WITSVID{wit("t2")}, time.Now().Add(time.Hour), nil)
	f.base.set(&endpoint.Snapshot{TrustDomain: td, Bundles: nil})
	snap = waitChanged(t, s)
	require.Equal(t, []endpoint.WITSVID{wit("t2")}, snap.WITSVIDs)

	// A taint is too.
	f.src.set([]endpoint.WITSVID{wit("t3")}, time.Now().Add(time.Hour), nil)
	f.taints <- struct{}{}
	require.Equal(t, []endpoint.WITSVID{wit("t3")}, waitChanged(t, s).WITSVIDs)

	// No identity any more: no view.
	f.base.set(nil)
	require.Nil(t, waitChanged(t, s))

	s.Close()
	s.Close()
	require.EqualValues(t, 1, f.untaint.Load())
	require.EqualValues(t, 1, f.base.closed.Load())
}

// The same view is published once: a refresh that finds what was
// published last signals nothing.
func TestStreamPublishesAChangeOnly(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	f.src.set([]endpoint.WITSVID{wit("t1")}, time.Now().Add(time.Hour), nil)
	s, err := Start(t.Context(), f.cfg)
	require.NoError(t, err)
	defer s.Close()
	first := waitChanged(t, s)
	f.taints <- struct{}{}
	require.Eventually(t, func() bool { return f.src.count() == 2 }, 10*time.Second, time.Millisecond)
	select {
	case <-s.Changed():
		t.Fatal("the same view was signalled again")
	default:
	}
	require.Same(t, first, s.Snapshot())
}

// A first view that fails fails Start, which then ends the subscription
// to taints and closes the base view.
func TestStartFails(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	f.src.set(nil, time.Time{}, endpoint.ErrUnimplemented)
	_, err := Start(t.Context(), f.cfg)
	require.ErrorIs(t, err, endpoint.ErrUnimplemented)
	require.EqualValues(t, 1, f.untaint.Load())
	require.EqualValues(t, 1, f.base.closed.Load())
}

// With no entry left (nothing collected, no failure), the view goes.
func TestStreamWithoutEntries(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	s, err := Start(t.Context(), f.cfg)
	require.NoError(t, err)
	defer s.Close()
	require.Nil(t, waitChanged(t, s))
}

// A refresh that fails keeps the last view and is tried again after a
// backoff; one that loses an entry only serves the others, and comes
// back for it after RetryMin.
func TestStreamRetries(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	var clock atomic.Int64 // seconds ahead of the real time
	f.cfg.Now = func() time.Time { return time.Now().Add(time.Duration(clock.Load()) * time.Second) }
	failed := errors.New("the signer is away")
	f.src.set([]endpoint.WITSVID{wit("t1")}, time.Now().Add(time.Hour), failed)
	s, err := Start(t.Context(), f.cfg)
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, []endpoint.WITSVID{wit("t1")}, waitChanged(t, s).WITSVIDs)

	// Due after RetryMin, not in an hour: the clock jumps past it.
	f.src.set(nil, time.Time{}, failed)
	clock.Store(int64(2 * RetryMax / time.Second))
	require.Eventually(t, func() bool { return f.log.Contains("WIT-SVIDs could not be renewed") }, 10*time.Second, time.Millisecond)
	require.Equal(t, []endpoint.WITSVID{wit("t1")}, s.Snapshot().WITSVIDs, "the last view stays")

	// And after the backoff, the next try.
	f.src.set([]endpoint.WITSVID{wit("t2")}, time.Now().Add(time.Hour), nil)
	clock.Store(int64(4 * RetryMax / time.Second))
	require.Equal(t, []endpoint.WITSVID{wit("t2")}, waitChanged(t, s).WITSVIDs)
}

// The goroutine ends when the issuer closes.
func TestStreamEndsWhenTheIssuerCloses(t *testing.T) {
	defer leaktest.Check(t)()
	f := newFixture()
	f.src.set([]endpoint.WITSVID{wit("t1")}, time.Now().Add(time.Hour), nil)
	s, err := Start(t.Context(), f.cfg)
	require.NoError(t, err)
	close(f.closed)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the goroutine did not end")
	}
	s.Close()
}
