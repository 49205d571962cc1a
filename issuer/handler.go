package issuer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/issuer/internal/attestation"
	"github.com/spiffekit/spiffekit/issuer/internal/viewcache"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// maxSubscribeRounds bounds the mint rounds of one Subscribe: another round
// is needed only when an entry changes while its SVID is being minted.
const maxSubscribeRounds = 4

// Subscribe attests caller and returns its live view: the X509-SVIDs of the
// entries that apply to it, minted now if none is cached, and the bundles it
// trusts. It implements endpoint.Handler.
//
// The caller is attested once, when the stream opens: the entries that apply
// to it follow the registry, its selectors stay those of that moment. The
// attestor is told which selector kinds the registry's entries use, and
// may skip the others (attest/unix hashes the executable only when an
// entry selects a hash); when an entry comes to use one it skipped, Run
// attests the caller again.
//
// The SVIDs it lacks are minted in one batch (see Config.MaxBatch) by Run,
// or awaited when another caller or Run's refresh is minting them; no lock
// is held meanwhile, so that other callers are served. A cached SVID that
// is due is served as it is while Run replaces it. An entry whose mint
// failed (a moment ago, or in this call) costs the caller only that SVID: it
// is served the others, and gets that one once a retry, after the entry's
// backoff, succeeds (see Config.Observer and the log for the failures). A
// caller every entry of which failed gets the last failure, which wraps
// endpoint.ErrUnavailable unless the Signer said otherwise (the Workload
// API answers Unavailable, and clients retry). A caller that needs a new
// SVID before Run starts
// waits for it; once Run has returned, it gets an error wrapping
// endpoint.ErrUnavailable.
//
// A caller no entry applies to gets an error wrapping endpoint.ErrNoIdentity;
// it gets its identity on a later call once an entry is registered for it.
// A caller the attestor rejects (its process is gone, or runs as another user
// than the one that connected) gets the same error.
func (i *Issuer) Subscribe(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	a, err := i.att.Attest(ctx, caller)
	if err != nil {
		return nil, err
	}
	for round := 0; ; round++ {
		sub, wait, err := i.subscribeOnce(caller, a, round)
		if errors.Is(err, errStale) {
			if a, err = i.att.Attest(ctx, caller); err != nil {
				return nil, err
			}
			continue
		}
		if sub != nil || err != nil {
			return sub, err
		}
		for _, c := range wait {
			// A failed mint is in backoff in the next round, which skips
			// its entry; one abandoned because Run stopped ends the call.
			select {
			case <-c.done:
				if errors.Is(c.err, errStopped) {
					return nil, c.err
				}
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
}

// subscribeOnce registers the subscription when every SVID of the caller's
// entries is cached, or in backoff after a failed mint (skipped). Otherwise it queues a mint, for Run, of those nobody
// is minting, and returns the mints to wait for before the next round.
func (i *Issuer) subscribeOnce(caller endpoint.Caller, a attestation.Attested, round int) (*subscription, []*mintCall, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	select {
	case <-i.life.Closed():
		return nil, nil, errClosed
	default:
	}
	if i.att.Stale(a) {
		// Checked under i.mu, which Run's reattest holds to find the
		// streams to attest again: an entry indexed before this check is
		// seen here, one indexed after it by reattest.
		if round >= maxSubscribeRounds {
			return nil, nil, fmt.Errorf("issuer: %w: entries keep changing", endpoint.ErrUnavailable)
		}
		return nil, nil, errStale
	}
	now := i.now()
	entries := i.entries(a.Selectors)
	if len(entries) == 0 {
		return nil, nil, fmt.Errorf("issuer: %w: no entry applies to the caller", endpoint.ErrNoIdentity)
	}
	var mine, wait []*mintCall
	var failed error // the last failure of an entry skipped
	due := false
	for _, e := range entries {
		m := i.svids.Get(e.ID)
		switch c := i.inflight[e.ID]; {
		case m.Usable(e, now):
			due = due || (c == nil && i.dueLocked(m, now) && i.backoffLocked(e, now) == nil)
		case c != nil:
			wait = append(wait, c)
		default:
			if err := i.backoffLocked(e, now); err != nil {
				// Its mint failed a moment ago (logged and counted then):
				// it costs the caller only this SVID.
				failed = err
				continue
			}
			if round >= maxSubscribeRounds {
				return nil, nil, fmt.Errorf("issuer: %w: entry %s keeps changing", endpoint.ErrUnavailable, e.ID)
			}
			if i.stopped {
				return nil, nil, errStopped
			}
			mine = append(mine, i.claimLocked(e))
		}
	}
	if len(mine) > 0 {
		// Minted by Run, bounded by its ctx: a caller that goes away does
		// not fail the mint for the others that wait for it. The mint wakes
		// Run's loop when done, as other streams may hold an older SVID of
		// the same entries.
		i.pending = append(i.pending, mine...)
		select {
		case i.mintReady <- struct{}{}:
		default:
		}
	}
	if wait = append(wait, mine...); len(wait) > 0 {
		return nil, wait, nil
	}
	v, _ := i.viewLocked(entries, now) // the entries skipped have no SVID
	if len(v.SVIDs) == 0 {
		// Every entry failed: the caller has identities it cannot be
		// given now, and retries (the error wraps ErrUnavailable).
		return nil, nil, failed
	}
	sub := &subscription{iss: i, caller: caller, attested: a, changed: make(chan struct{}, 1)}
	sub.update(v)
	i.subs[sub] = struct{}{}
	if due {
		// Served as it is; Run replaces it and pushes the new one to this
		// stream too.
		i.poke()
	}
	return sub, nil, nil
}

// subscription is one caller's live view. Run's loop replaces the snapshot and signals changed; the server reads both.
type subscription struct {
	iss    *Issuer
	caller endpoint.Caller
	// attested is the caller's attestation when the stream opened, or
	// later by reattest. Guarded by iss.mu.
	attested attestation.Attested

	last      viewcache.View // guarded by iss.mu
	published bool           // guarded by iss.mu
	snap      atomic.Pointer[endpoint.Snapshot]
	changed   chan struct{} // capacity 1
	once      sync.Once
}

// update publishes v if it differs from the view last published, and
// signals the change. The issuer's mu must be held.
func (s *subscription) update(v viewcache.View) {
	if s.published && v.Equal(s.last) {
		if snap := s.snap.Load(); snap != nil {
			// Offered to the callers that will see the same view.
			s.iss.views.Offer(v, snap)
		}
		return
	}
	s.last, s.published = v, true
	if len(v.SVIDs) == 0 {
		// No entry applies any more: the server ends the stream with
		// PermissionDenied (WAPI rule 10).
		s.snap.Store(nil)
	} else {
		s.snap.Store(s.iss.views.Snapshot(s.iss.td, v))
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
