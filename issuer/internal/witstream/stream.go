package witstream

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// RetryMin and RetryMax bound the wait before WIT-SVIDs that failed are
// asked for again while a caller watches.
const (
	RetryMin = time.Second
	RetryMax = 30 * time.Second
)

// Collect returns the WIT-SVIDs of the caller's entries, minting those
// due, and when the first of them is due again. An entry whose WIT-SVID
// cannot be had costs the caller only that one: Collect returns the others
// with the failure. With no WIT-SVID, an error fails the refresh (nothing
// could be had, or, wrapping endpoint.ErrUnimplemented, nothing ever can),
// and none says that no entry applies any more.
type Collect func(ctx context.Context) (wits []endpoint.WITSVID, next time.Time, err error)

// Config configures Start.
type Config struct {
	// Base is the caller's view without WIT-SVIDs. Required. The stream
	// closes it when it closes.
	Base endpoint.Subscription
	// Collect has the WIT-SVIDs of the caller's entries. Required.
	Collect Collect
	// Taints fires when WIT keys are tainted or leave the bundle: the
	// WIT-SVIDs they signed are renewed. Untaint ends that subscription;
	// the stream calls it when it closes.
	Taints  <-chan struct{}
	Untaint func()
	// Closed is closed when the issuer closes: the goroutine ends.
	Closed <-chan struct{}
	// Now is the issuer's clock. Required.
	Now func() time.Time
	// Log receives the failures. Required.
	Log *slog.Logger
}

// Stream is one FetchWITSVID caller's view. It implements
// endpoint.Subscription.
type Stream struct {
	cfg     Config
	snap    atomic.Pointer[endpoint.Snapshot]
	changed chan struct{} // capacity 1
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	once    sync.Once

	// Owned by refresh: what the published snapshot was made of.
	published bool
	lastBase  *endpoint.Snapshot
	lastWITs  []endpoint.WITSVID
}

// Start makes the first view, with the WIT-SVIDs due now, and starts the
// goroutine that keeps it fresh until Close. When the first view fails,
// it ends the subscription to taints, closes Base and returns the error.
// ctx bounds the first view only.
func Start(ctx context.Context, cfg Config) (*Stream, error) {
	s := &Stream{cfg: cfg, changed: make(chan struct{}, 1), done: make(chan struct{})}
	next, err := s.refresh(ctx)
	if err != nil {
		cfg.Untaint()
		cfg.Base.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(runCtx, next)
	return s, nil
}

// Snapshot implements endpoint.Subscription.
func (s *Stream) Snapshot() *endpoint.Snapshot { return s.snap.Load() }

// Changed implements endpoint.Subscription.
func (s *Stream) Changed() <-chan struct{} { return s.changed }

// Close stops the goroutine, waits for it, ends the subscription to
// taints and closes the base view. It is idempotent.
func (s *Stream) Close() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
		s.cfg.Untaint()
		s.cfg.Base.Close()
	})
}

// run refreshes the view when the base view changes, when a WIT key is
// tainted, when a WIT-SVID is due, and after a failure, until ctx is done
// or the issuer closes.
func (s *Stream) run(ctx context.Context, next time.Time) {
	defer close(s.done)
	retry := RetryMin
	for {
		timer := time.NewTimer(max(next.Sub(s.cfg.Now()), 0))
		select {
		case <-s.cfg.Base.Changed():
		case <-s.cfg.Taints:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.cfg.Closed:
			timer.Stop()
			return
		}
		timer.Stop()
		n, err := s.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Nothing could be minted: the last view stays, and the
			// next try comes after a backoff.
			s.cfg.Log.Warn("WIT-SVIDs could not be renewed; retrying", "retry_in", retry, "err", err)
			next, retry = s.cfg.Now().Add(retry), min(2*retry, RetryMax)
		default:
			next, retry = n, RetryMin
		}
	}
}

// refresh builds the view from the base view and the WIT-SVIDs of the
// caller's entries, minting those due, and publishes it if it changed. It
// returns when to refresh again: when the first WIT-SVID is due, or after
// RetryMin when one failed. It fails when the caller has identities but
// no WIT-SVID could be had.
func (s *Stream) refresh(ctx context.Context) (time.Time, error) {
	base := s.cfg.Base.Snapshot()
	if base == nil {
		// No identity any more: the server ends the stream.
		s.publish(nil, nil)
		return s.cfg.Now().Add(RetryMax), nil
	}
	wits, next, err := s.cfg.Collect(ctx)
	if len(wits) == 0 {
		if err != nil {
			return time.Time{}, err
		}
		s.publish(nil, nil) // no entry applies any more
		return s.cfg.Now().Add(RetryMax), nil
	}
	if err != nil {
		next = s.cfg.Now().Add(RetryMin)
	}
	s.publish(base, wits)
	return next, nil
}

// publish stores the view made of base and wits, unless it is the one
// published last, and signals the change.
func (s *Stream) publish(base *endpoint.Snapshot, wits []endpoint.WITSVID) {
	if s.published && base == s.lastBase && slices.Equal(wits, s.lastWITs) {
		return
	}
	s.published, s.lastBase, s.lastWITs = true, base, wits
	if base == nil {
		s.snap.Store(nil)
	} else {
		s.snap.Store(&endpoint.Snapshot{
			TrustDomain: base.TrustDomain, X509SVIDs: base.X509SVIDs, RawX509SVIDs: base.RawX509SVIDs,
			Bundles: base.Bundles, WITSVIDs: wits,
		})
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}
