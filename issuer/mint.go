package issuer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffekit/spiffekit/internal/parallel"
	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/issuer/internal/x509store"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// mintCall is the X509-SVID of one entry being minted. At most one exists
// per entry (in Issuer.inflight): that is what keeps one SVID per entry
// while no lock is held across the Signer.
type mintCall struct {
	entry registry.Entry
	caGen uint64        // Issuer.auth.Gen when the mint started
	done  chan struct{} // closed once err is set and the result published
	err   error
}

// claimLocked records a mint of e in flight and returns it; the caller
// must pass it to mintAll. i.mu must be held, and e must have no mint in
// flight.
func (i *Issuer) claimLocked(e registry.Entry) *mintCall {
	c := &mintCall{entry: e, caGen: i.auth.Gen, done: make(chan struct{})}
	i.inflight[e.ID] = c
	return c
}

// backoffLocked returns the last failure to mint e when it is recent
// enough that e must not be tried again yet, else nil. i.mu must be held.
func (i *Issuer) backoffLocked(e registry.Entry, now time.Time) error {
	r, ok := i.retry[e.ID]
	if !ok || r.Revision != e.Revision || !now.Before(r.At) {
		return nil
	}
	return r.Err
}

// mintAll mints the X509-SVIDs of calls, one Signer call per MaxBatch of
// them, publishing each batch as it completes, and then, when poke is set,
// wakes Run's loop so that every view holding one of these entries gets
// its new SVID. It holds no lock while the Signer runs.
func (i *Issuer) mintAll(ctx context.Context, calls []*mintCall, poke bool) {
	for len(calls) > 0 {
		n := min(len(calls), i.maxBatch)
		i.mintBatch(ctx, calls[:n])
		calls = calls[n:]
	}
	if poke {
		i.poke()
	}
}

// mintBatch generates a key for each call, has the Signer certify them all
// in one call, checks the chains and publishes them.
func (i *Issuer) mintBatch(ctx context.Context, calls []*mintCall) {
	reqs := make([]X509SVIDRequest, len(calls))
	keys := make([]*ecdsa.PrivateKey, len(calls))
	keyErrs := make([]error, len(calls))
	parallel.For(len(calls), func(k int) {
		keys[k], keyErrs[k] = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	var batchErr error
	if err := errors.Join(keyErrs...); err != nil {
		batchErr = fmt.Errorf("generating a key: %w", err)
	}
	for k, c := range calls {
		ttl := c.entry.X509SVIDTTL
		if ttl == 0 {
			ttl = i.cfg.X509SVIDTTL
		}
		reqs[k] = X509SVIDRequest{Entry: c.entry, Key: keys[k], TTL: ttl}
	}
	var (
		results []X509SVIDResult
		start   time.Time
		took    time.Duration
	)
	if batchErr == nil {
		if i.cfg.Observer != nil {
			start = time.Now()
		}
		results, batchErr = i.signer.SignX509SVIDs(ctx, reqs)
		if i.cfg.Observer != nil {
			took = time.Since(start)
		}
		if batchErr == nil && len(results) != len(reqs) {
			batchErr = fmt.Errorf("the signer returned %d results for %d requests", len(results), len(reqs))
		}
	}
	now := i.now()
	svids := make([]*endpoint.RawX509SVID, len(calls))
	leaves := make([]*x509.Certificate, len(calls))
	errs := make([]error, len(calls))
	// Outside the lock, on every core: each check verifies a signature.
	parallel.For(len(calls), func(k int) {
		c := calls[k]
		err := batchErr
		if err == nil {
			err = results[k].Err
		}
		if err == nil {
			err = svidcheck.Chain(c.entry, keys[k], results[k].Certificates, now)
		}
		if err == nil {
			svids[k], err = x509store.Raw(c.entry, keys[k], results[k].Certificates)
		}
		if err != nil {
			errs[k] = err
			return
		}
		leaves[k] = results[k].Certificates[0]
	})
	if o := i.cfg.Observer; o != nil && !start.IsZero() {
		o.Signed(svidX509, len(calls), countErrors(errs), took)
	}
	quiet := ctx.Err() != nil // failures of a stopping issuer are not news
	var kept, lost retry.Failures
	i.mu.Lock()
	for k, c := range calls {
		i.publishLocked(c, svids[k], leaves[k], errs[k], now, &kept, &lost)
	}
	i.mu.Unlock()
	// One line per batch for the operator; one per SVID at Debug (a
	// rotation of 10,000 entries is one line, not 10,000, and so is a
	// batch that fails while every server is away).
	if minted := len(calls) - countErrors(errs); minted > 0 {
		i.log.Info("minted X509-SVIDs", "count", minted, "failed", len(calls)-minted)
	}
	if !quiet {
		kept.Log(i.log, slog.LevelWarn, "re-minting X509-SVIDs failed; serving the previous ones")
		lost.Log(i.log, slog.LevelError, "minting X509-SVIDs failed")
	}
	for _, c := range calls {
		close(c.done)
	}
}

// abandon ends mints that never reached a Signer, because Run stopped
// before it could take them, failing their waiters with err. Unlike a
// failed mint, it records no retry.
func (i *Issuer) abandon(calls []*mintCall, err error) {
	i.mu.Lock()
	for _, c := range calls {
		delete(i.inflight, c.entry.ID)
		c.err = err
	}
	i.mu.Unlock()
	for _, c := range calls {
		close(c.done)
	}
}

// publishLocked ends the mint of c: it caches s, whose parsed leaf is leaf,
// or records the failure err and when to try again, logged at Debug and
// added to kept (the previous SVID is still served) or lost (none is).
// i.mu must be held.
func (i *Issuer) publishLocked(c *mintCall, s *endpoint.RawX509SVID, leaf *x509.Certificate, err error, now time.Time, kept, lost *retry.Failures) {
	e := c.entry
	delete(i.inflight, e.ID)
	old := i.svids.Get(e.ID)
	if err != nil {
		c.err = fmt.Errorf("issuer: minting an X509-SVID for entry %s: %w", e.ID, retry.Retryable(err))
		r := i.retry[e.ID]
		if r.Revision != e.Revision {
			r = retry.State{Revision: e.Revision}
		}
		r.Failures++
		r.Err = c.err
		wait := i.backoff(r.Failures)
		if old != nil && old.Revision == e.Revision && now.Before(old.NotAfter) {
			// Never let the SVID served now expire for want of a retry: the
			// retries come closer as its expiry nears.
			wait = min(wait, max(old.NotAfter.Sub(now)/2, retry.Interval))
			i.log.Debug("re-minting failed; serving the previous SVID", "entry", e.ID,
				"not_after", old.NotAfter, "retry_in", wait, "err", err)
			kept.Add(e, wait, err)
		} else {
			i.log.Debug("minting an X509-SVID failed", "entry", e.ID, "spiffe_id", e.SPIFFEID.String(),
				"retry_in", wait, "err", err)
			lost.Add(e, wait, err)
		}
		r.At = now.Add(wait)
		i.retry[e.ID] = r
		return
	}
	delete(i.retry, e.ID)
	// Half the life from when it was received: NotBefore is backdated for
	// clock skew, which would make a short-lived SVID due at once.
	start := later(leaf.NotBefore, now)
	refreshAt := start.Add(leaf.NotAfter.Sub(start) / 2)
	// A chain whose half life is already past (a CA about to expire) would
	// otherwise be re-minted in a busy loop.
	refreshAt = later(refreshAt, now.Add(retry.Interval))
	i.svids.Set(e.ID, &x509store.SVID{Revision: e.Revision, SVID: s, RefreshAt: refreshAt, NotBefore: leaf.NotBefore,
		NotAfter: leaf.NotAfter, MintedAt: now.Round(0), CAGen: c.caGen})
	i.log.Debug("minted X509-SVID", "entry", e.ID, "spiffe_id", e.SPIFFEID.String(),
		"serial", leaf.SerialNumber.Text(16), "not_after", leaf.NotAfter)
}

// countErrors returns how many of errs are not nil.
func countErrors(errs []error) int {
	n := 0
	for _, err := range errs {
		if err != nil {
			n++
		}
	}
	return n
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
