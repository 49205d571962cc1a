package fedpoll

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// minRefreshHint is the shortest poll interval a bundle's refresh hint can
// ask for: the foreign endpoint cannot make the server poll it in a tight
// loop.
const minRefreshHint = time.Second

// A BundleSource holds the bundles a server has in memory: its own trust
// domain's, as it hands it out, and the federated bundles as last read
// from the store (trust.View is one).
type BundleSource interface {
	Bundle() *spiffebundle.Bundle
	FederatedBundle(spiffeid.TrustDomain) *spiffebundle.Bundle
}

// watcher keeps the bundle of one relationship fresh in the datastore.
type watcher struct {
	rel     Checked
	own     spiffeid.TrustDomain
	trust   BundleSource
	bundles registry.BundleStore // the datastore, which tells the servers of each write
	log     *slog.Logger
	refresh time.Duration
	timeout time.Duration
	// firstRetry is the first wait after a failed fetch while none has
	// succeeded yet; it doubles up to the regular interval.
	firstRetry time.Duration

	fetched atomic.Bool // a fetch has succeeded: the bootstrap is spent
	healthy atomic.Bool // the last fetch succeeded: it takes a slot of slots.healthy
	slots   *fetchSlots
	stats   fetchStats
}

// fetchSlots bounds the fetches under way at once, in two pools of the
// same size: healthy, for the relationships whose last fetch succeeded,
// and probation, for those whose last fetch failed or that never fetched.
// A dead endpoint holds its slot until the fetch times out; kept in
// probation, it never keeps a healthy relationship waiting, whatever the
// number of dead ones.
type fetchSlots struct {
	healthy, probation chan struct{}
}

func newFetchSlots(n int) *fetchSlots {
	return &fetchSlots{healthy: make(chan struct{}, n), probation: make(chan struct{}, n)}
}

// acquire waits for a slot of the pool healthy names, and returns its
// release; it fails only when ctx ends. A nil f bounds nothing.
func (f *fetchSlots) acquire(ctx context.Context, healthy bool) (func(), error) {
	if f == nil {
		return func() {}, nil
	}
	pool := f.probation
	if healthy {
		pool = f.healthy
	}
	select {
	case pool <- struct{}{}:
		return func() { <-pool }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// GetX509BundleForTrustDomain implements x509bundle.Source for the
// https_spiffe authentication of the endpoint: the latest bundle of the
// endpoint's trust domain, held in memory (it is called in a TLS
// handshake). For a self-serving endpoint that is the latest stored bundle
// of the relationship's trust domain, and the bootstrap bundle only until a
// first fetch succeeds (Fed rule 17); otherwise it is the bundle another
// relationship or the operator stored (Fed rule 18), or the own trust
// domain's.
func (w *watcher) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != w.rel.EndpointSPIFFEID.TrustDomain() {
		return nil, fmt.Errorf("server: no bundle of %q for the bundle endpoint of %q", td.Name(), w.rel.TrustDomain.Name())
	}
	if td == w.own {
		return w.trust.Bundle().X509Bundle(), nil
	}
	if b := w.trust.FederatedBundle(td); b != nil {
		return b.X509Bundle(), nil
	}
	if w.rel.bootstrap != nil && !w.fetched.Load() {
		return w.rel.bootstrap, nil
	}
	return nil, fmt.Errorf("server: no bundle of %q is stored to authenticate its bundle endpoint", td.Name())
}

// nextRefresh is when to poll again: the bundle's refresh hint when shorter
// than the configured interval, never under a second unless the interval
// itself is (Fed rules 21, 22).
func (w *watcher) nextRefresh(hint time.Duration) time.Duration {
	next := w.refresh
	if hint > 0 && hint < next {
		next = max(hint, min(minRefreshHint, w.refresh))
	}
	return next
}

// run polls the endpoint until ctx is done. It does what
// federation.WatchBundle does, with each fetch bounded by the timeout
// (Fed rule 25: a hanging endpoint must not stall the relationship) and
// every fetched bundle compared with the stored one, so that a bundle
// replaced by hand is replaced again by the next refresh (Fed rule 20).
// Until a first fetch succeeds, a failed one is tried again with a
// backoff from firstRetry, doubling up to the regular interval, so that a
// relationship whose peer is not up yet starts as soon as it is.
func (w *watcher) run(ctx context.Context) {
	backoff := w.firstRetry
	for {
		next, ok := w.poll(ctx)
		if !ok && !w.fetched.Load() && backoff > 0 && backoff < next {
			w.log.Info("the first fetch of a federated bundle failed; trying again soon", "in", backoff)
			next, backoff = backoff, backoff*2
		}
		t := time.NewTimer(next)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// poll fetches once, stores the bundle if it changed, and returns when to
// poll again and whether the fetch succeeded. A failure keeps the stored
// bundle (Fed rule 25) and, once a fetch has succeeded, waits for the next
// regular poll (Fed rule 22).
func (w *watcher) poll(ctx context.Context) (time.Duration, bool) {
	b, _, err := w.fetch(ctx)
	if err != nil {
		return w.nextRefresh(w.storedHint()), false
	}
	hint, _ := b.RefreshHint()
	return w.nextRefresh(hint), true
}

// fetch fetches the bundle once, bounded by the timeout, and stores it if
// it changed; it returns the bundle and whether the stored one changed.
// It logs and counts as every poll does. The admin API's refresh calls it
// beside the watcher's own polls.
func (w *watcher) fetch(ctx context.Context) (*spiffebundle.Bundle, bool, error) {
	td := w.rel.TrustDomain
	var opt federation.FetchOption
	if w.rel.Profile == ProfileHTTPSSPIFFE {
		opt = federation.WithSPIFFEAuth(w, w.rel.EndpointSPIFFEID)
	} else {
		opt = federation.WithWebPKIRoots(w.rel.WebPKIRoots)
	}
	release, err := w.slots.acquire(ctx, w.healthy.Load())
	if err != nil {
		return nil, false, err
	}
	fctx, cancel := context.WithTimeout(ctx, w.timeout) // from the slot on: waiting for one is not the endpoint's time
	b, err := federation.FetchBundle(fctx, td, w.rel.URL, opt)
	cancel()
	release()
	w.healthy.Store(err == nil)
	if err != nil {
		if ctx.Err() == nil {
			// A fetch cut short by the server's own shutdown is no
			// failure of the endpoint.
			w.stats.failed()
			w.log.Warn("fetching a federated bundle failed; the last good bundle stays", "err", err)
		}
		return nil, false, err
	}
	w.stats.fetched(time.Now())
	w.fetched.Store(true)
	seq, _ := b.SequenceNumber()
	// Fed rule 18: every fetch is logged.
	w.log.Debug("fetched a federated bundle", "sequence", seq, "x509_authorities", len(b.X509Authorities()))
	changed, err := w.store(ctx, b)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("storing a federated bundle failed", "err", err)
		}
		return b, false, err
	}
	return b, changed, nil
}

// storedHint is the refresh hint of the stored bundle, 0 if none.
func (w *watcher) storedHint() time.Duration {
	if b := w.trust.FederatedBundle(w.rel.TrustDomain); b != nil {
		h, _ := b.RefreshHint()
		return h
	}
	return 0
}

// store writes b to the datastore if it differs from the stored bundle,
// and reports whether it did.
func (w *watcher) store(ctx context.Context, b *spiffebundle.Bundle) (bool, error) {
	td := w.rel.TrustDomain
	cur, err := w.bundles.GetBundle(ctx, td)
	switch {
	case err == nil:
		if old, perr := spiffebundle.Parse(td, cur.Document); perr == nil {
			if old.Equal(b) {
				return false, nil
			}
			oldSeq, ok1 := old.SequenceNumber()
			newSeq, ok2 := b.SequenceNumber()
			if ok1 && ok2 && newSeq < oldSeq {
				// Fed rule 20: the most recent fetch is current, but a
				// sequence going backwards deserves a look (a restored
				// backup, or servers behind one URL out of step).
				w.log.Warn("the fetched bundle's sequence number is lower than the stored one's", "stored", oldSeq, "fetched", newSeq)
			}
		}
	case !errors.Is(err, registry.ErrNotFound):
		return false, fmt.Errorf("server: reading the stored bundle: %w", err)
	}
	doc, err := b.Marshal()
	if err != nil {
		return false, fmt.Errorf("server: encoding the bundle: %w", err)
	}
	if _, err := w.bundles.PutBundle(ctx, registry.FederatedBundle{TrustDomain: td, Document: doc}); err != nil {
		return false, fmt.Errorf("server: storing the bundle: %w", err)
	}
	seq, _ := b.SequenceNumber()
	w.log.Info("federated bundle updated", "sequence", seq, "x509_authorities", len(b.X509Authorities()),
		"jwt_authorities", len(b.JWTAuthorities()))
	return true, nil
}

// Stats counts the fetches from the bundle endpoint of one federation
// relationship since the server started.
type Stats struct {
	// TrustDomain is the foreign trust domain of the relationship.
	TrustDomain spiffeid.TrustDomain

	// Fetches counts the fetches that returned a valid bundle, and
	// Failures those that did not (the endpoint unreachable or
	// unauthenticated, the bundle invalid, the fetch timed out).
	Fetches, Failures uint64

	// LastFetch is when the last fetch that returned a valid bundle
	// ended; zero if none has.
	LastFetch time.Time
}

// fetchStats counts the fetches of one relationship; safe for concurrent
// use.
type fetchStats struct {
	fetches, failures atomic.Uint64
	last              atomic.Int64 // unix nanoseconds of the last good fetch
}

func (f *fetchStats) fetched(at time.Time) {
	f.fetches.Add(1)
	f.last.Store(at.UnixNano())
}

func (f *fetchStats) failed() { f.failures.Add(1) }

func (f *fetchStats) snapshot(td spiffeid.TrustDomain) Stats {
	st := Stats{TrustDomain: td, Fetches: f.fetches.Load(), Failures: f.failures.Load()}
	if ns := f.last.Load(); ns != 0 {
		st.LastFetch = time.Unix(0, ns)
	}
	return st
}
