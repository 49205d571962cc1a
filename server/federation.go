package server

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server/internal/trust"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of the federation settings of Config.
const (
	// DefaultFederationRefresh is the longest time between two polls of a
	// bundle endpoint (Fed rule 21).
	DefaultFederationRefresh = 5 * time.Minute
	// DefaultFederationTimeout bounds one fetch from a bundle endpoint
	// (Fed rule 25).
	DefaultFederationTimeout = 30 * time.Second
	// DefaultFederationConcurrency bounds the fetches from bundle
	// endpoints under way at once, in each of its two pools
	// (Config.FederationConcurrency).
	DefaultFederationConcurrency = 32
	// minRefreshHint is the shortest poll interval a bundle's refresh hint
	// can ask for: the foreign endpoint cannot make the server poll it in a
	// tight loop.
	minRefreshHint = time.Second
)

// maxRelationships bounds Config.Federation: each relationship is a
// goroutine polling an endpoint.
const maxRelationships = 1024

// A Relationship is a federation relationship: the server polls the bundle
// endpoint at URL for the bundle of TrustDomain and keeps it in the
// datastore, from where it reaches the agents and the workloads whose
// entries federate with TrustDomain (Fed rule 5). A relationship is
// one-way (Fed rule 4). Every parameter is given explicitly; none is
// derived from another (Fed rule 2).
type Relationship struct {
	// TrustDomain is the foreign trust domain whose bundle the endpoint
	// serves. Required; never the server's own trust domain.
	TrustDomain spiffeid.TrustDomain

	// URL is the bundle endpoint: https, no user information (Fed rule 8).
	// Required.
	URL string

	// Profile is ProfileHTTPSSPIFFE or ProfileHTTPSWeb. Required.
	Profile Profile

	// EndpointSPIFFEID is the SPIFFE ID the endpoint's X509-SVID must
	// carry. Required for ProfileHTTPSSPIFFE, refused for ProfileHTTPSWeb.
	EndpointSPIFFEID spiffeid.ID

	// BootstrapBundle is a bundle of TrustDomain holding at least one
	// X.509 authority, used to authenticate the first fetch from a
	// self-serving https_spiffe endpoint (one whose ID is in TrustDomain);
	// later fetches use the latest stored bundle (Fed rule 17). Needed for
	// such an endpoint unless Stores.Bundles already holds a bundle of
	// TrustDomain; refused otherwise: the bundle of another endpoint trust
	// domain comes from its own relationship or `bundle set` (Fed rule 18).
	// A program reading PEM CA certificates makes one with
	// spiffebundle.FromX509Authorities.
	BootstrapBundle *spiffebundle.Bundle

	// WebPKIRoots are the CA certificates that the certificate of an
	// https_web endpoint must chain to. Nil means the system roots.
	// Refused for ProfileHTTPSSPIFFE.
	WebPKIRoots *x509.CertPool
}

// relationship is a validated Relationship.
type relationship struct {
	Relationship
	bootstrap *x509bundle.Bundle // self-serving https_spiffe only
}

func (r relationship) selfServing() bool {
	return r.Profile == ProfileHTTPSSPIFFE && r.EndpointSPIFFEID.MemberOf(r.TrustDomain)
}

// validateEndpointURL checks a bundle endpoint URL (Fed rule 8).
func validateEndpointURL(raw string) error {
	if raw == "" {
		return errors.New("the URL is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bad URL: %w", err)
	}
	switch {
	case u.Scheme != "https":
		return fmt.Errorf("URL %q: the scheme must be https", raw)
	case u.User != nil:
		return fmt.Errorf("URL %q: user information is not allowed", raw)
	case u.Host == "":
		return fmt.Errorf("URL %q: no host", raw)
	}
	return nil
}

// validateRelationships checks every relationship strictly; stored says
// whether Stores.Bundles holds a bundle of a trust domain. Its errors wrap
// ErrInvalidConfig, but for a failure of stored.
func validateRelationships(own spiffeid.TrustDomain, rels []Relationship, stored func(spiffeid.TrustDomain) (bool, error)) ([]relationship, error) {
	if len(rels) > maxRelationships {
		return nil, invalidf("at most %d federation relationships", maxRelationships)
	}
	seen := map[spiffeid.TrustDomain]bool{}
	out := make([]relationship, 0, len(rels))
	for i, r := range rels {
		v, err := validateRelationship(own, r, stored)
		if err != nil {
			name := r.TrustDomain.Name()
			if name == "" {
				name = fmt.Sprintf("#%d", i+1)
			}
			if se, ok := errors.AsType[storeError](err); ok {
				return nil, fmt.Errorf("server: federation relationship %s: %w", name, se.err)
			}
			return nil, invalidf("federation relationship %s: %w", name, err)
		}
		if seen[r.TrustDomain] {
			return nil, invalidf("federation relationship %s: configured twice", r.TrustDomain.Name())
		}
		seen[r.TrustDomain] = true
		out = append(out, v)
	}
	return out, nil
}

// storeError is a failure to read the store while validating a
// relationship: not the configuration's fault.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }

func validateRelationship(own spiffeid.TrustDomain, r Relationship, stored func(spiffeid.TrustDomain) (bool, error)) (relationship, error) {
	v := relationship{Relationship: r}
	switch {
	case r.TrustDomain.IsZero():
		return v, errors.New("the trust domain is required")
	case r.TrustDomain == own:
		// Fed rule 23 [ours].
		return v, errors.New("a trust domain's own bundle can never be overwritten through federation")
	}
	if err := validateEndpointURL(r.URL); err != nil {
		return v, err
	}
	switch r.Profile {
	case ProfileHTTPSSPIFFE:
		if r.EndpointSPIFFEID.IsZero() {
			return v, errors.New("the https_spiffe profile needs the endpoint's SPIFFE ID") // Fed rule 14
		}
		if r.WebPKIRoots != nil {
			return v, errors.New("the Web PKI roots are for the https_web profile only")
		}
		if !v.selfServing() {
			if r.BootstrapBundle != nil {
				return v, fmt.Errorf("a bootstrap bundle is only for an endpoint of the trust domain it serves; the bundle of %s must come from its own relationship or `bundle set`", r.EndpointSPIFFEID.TrustDomain().Name())
			}
			return v, nil
		}
		if b := r.BootstrapBundle; b != nil {
			switch {
			case b.TrustDomain() != r.TrustDomain:
				return v, fmt.Errorf("the bootstrap bundle is of trust domain %q", b.TrustDomain().Name())
			case len(b.X509Authorities()) == 0:
				return v, errors.New("the bootstrap bundle holds no X.509 authority")
			}
			v.bootstrap = b.X509Bundle()
			return v, nil
		}
		ok, err := stored(r.TrustDomain)
		if err != nil {
			return v, storeError{err}
		}
		if !ok {
			return v, errors.New("a self-serving https_spiffe endpoint needs a bootstrap bundle, or a bundle set with `bundle set`, to authenticate the first fetch")
		}
		return v, nil
	case ProfileHTTPSWeb:
		if !r.EndpointSPIFFEID.IsZero() || r.BootstrapBundle != nil {
			return v, errors.New("an endpoint SPIFFE ID and a bootstrap bundle are for the https_spiffe profile only")
		}
		return v, nil
	case "":
		return v, errors.New("the profile is required (https_spiffe or https_web)")
	}
	return v, fmt.Errorf("unknown profile %q (want https_spiffe or https_web)", r.Profile)
}

// fedWatcher keeps the bundle of one relationship fresh in the datastore.
type fedWatcher struct {
	rel     relationship
	trust   *trust.View
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
func (w *fedWatcher) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != w.rel.EndpointSPIFFEID.TrustDomain() {
		return nil, fmt.Errorf("server: no bundle of %q for the bundle endpoint of %q", td.Name(), w.rel.TrustDomain.Name())
	}
	if td == w.trust.TrustDomain() {
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
func (w *fedWatcher) nextRefresh(hint time.Duration) time.Duration {
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
func (w *fedWatcher) run(ctx context.Context) {
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
func (w *fedWatcher) poll(ctx context.Context) (time.Duration, bool) {
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
func (w *fedWatcher) fetch(ctx context.Context) (*spiffebundle.Bundle, bool, error) {
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
func (w *fedWatcher) storedHint() time.Duration {
	if b := w.trust.FederatedBundle(w.rel.TrustDomain); b != nil {
		h, _ := b.RefreshHint()
		return h
	}
	return 0
}

// store writes b to the datastore if it differs from the stored bundle,
// and reports whether it did.
func (w *fedWatcher) store(ctx context.Context, b *spiffebundle.Bundle) (bool, error) {
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
