package issuer

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Subscribe attests caller and returns its live view: the X509-SVIDs of the
// entries that apply to it, minted now if none is cached, and the bundles it
// trusts. It implements endpoint.Handler.
//
// The caller is attested once, when the stream opens: the entries that apply
// to it follow the registry, its selectors stay those of that moment.
//
// A caller no entry applies to gets an error wrapping endpoint.ErrNoIdentity;
// it gets its identity on a later call once an entry is registered for it.
// A caller the attestor rejects (its process is gone, or runs as another user
// than the one that connected) gets the same error.
func (i *Issuer) Subscribe(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	sels, err := i.selectors(ctx, caller)
	if err != nil {
		return nil, err
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.closed {
		return nil, fmt.Errorf("issuer: %w: closed", endpoint.ErrUnavailable)
	}
	mints := i.mints
	v, err := i.viewLocked(ctx, sels, i.now())
	if err != nil {
		return nil, err
	}
	if len(v.svids) == 0 {
		return nil, fmt.Errorf("issuer: %w: no entry applies to the caller", endpoint.ErrNoIdentity)
	}
	sub := &subscription{iss: i, caller: caller, selectors: sels, changed: make(chan struct{}, 1)}
	sub.update(v)
	i.subs[sub] = struct{}{}
	if i.mints != mints {
		// A new SVID may replace one that other streams hold, and may be due
		// before the background goroutine's next wake-up: let it refresh
		// and reschedule. Streams that minted nothing cost no refresh.
		i.poke()
	}
	return sub, nil
}

// subscription is one caller's live view. The issuer's background goroutine
// replaces the snapshot and signals changed; the server reads both.
type subscription struct {
	iss       *Issuer
	caller    endpoint.Caller
	selectors []registry.Selector // attested once, when the stream opened

	last      view // guarded by iss.mu
	published bool // guarded by iss.mu
	snap      atomic.Pointer[endpoint.Snapshot]
	changed   chan struct{} // capacity 1
	once      sync.Once
}

// update publishes v if it differs from the view last published, and
// signals the change. The issuer's mu must be held.
func (s *subscription) update(v view) {
	if s.published && v.equal(s.last) {
		return
	}
	s.last, s.published = v, true
	if len(v.svids) == 0 {
		// No entry applies any more: the server ends the stream with
		// PermissionDenied (WAPI rule 10).
		s.snap.Store(nil)
	} else {
		s.snap.Store(&endpoint.Snapshot{
			TrustDomain: s.iss.td,
			X509SVIDs:   v.svids,
			Bundles:     v.bundles,
		})
	}
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Snapshot returns the caller's current view, or nil once no entry applies
// to it.
func (s *subscription) Snapshot() *endpoint.Snapshot { return s.snap.Load() }

// Changed fires after the view was replaced.
func (s *subscription) Changed() <-chan struct{} { return s.changed }

// Close removes the subscription from the issuer.
func (s *subscription) Close() {
	s.once.Do(func() {
		s.iss.mu.Lock()
		delete(s.iss.subs, s)
		s.iss.mu.Unlock()
	})
}
