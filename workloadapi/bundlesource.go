package workloadapi

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// BundleSource is a source of SPIFFE bundles maintained via the Workload API.
//
// It watches FetchX509Bundles and FetchJWTBundles. go-spiffe watches
// FetchX509SVID instead, so its BundleSource fails for a workload that has
// no X509-SVID; this one only needs the caller to be entitled to bundles.
// Getters are non-blocking and safe for concurrent use.
type BundleSource struct {
	base sourceBase

	x509     atomic.Pointer[x509bundle.Set]
	jwt      atomic.Pointer[jwtbundle.Set]
	x509Set  chan struct{}
	x509Once sync.Once
	jwtSet   chan struct{}
	jwtOnce  sync.Once
}

// NewBundleSource creates a new BundleSource. It blocks until the initial
// update has been received from the Workload API, unless
// WithoutWaitingForFirstUpdate is given. The source should be closed when no
// longer in use to free underlying resources. On error, everything it
// started is stopped again.
func NewBundleSource(ctx context.Context, options ...BundleSourceOption) (_ *BundleSource, err error) {
	var cfg bundleSourceConfig
	for _, opt := range options {
		opt.configureBundleSource(&cfg)
	}
	s := &BundleSource{x509Set: make(chan struct{}), jwtSet: make(chan struct{})}
	w := (*bundleSourceWatcher)(s)
	watches := []func(context.Context) error{
		func(ctx context.Context) error { return s.base.client.WatchX509Bundles(ctx, w) },
		func(ctx context.Context) error { return s.base.client.WatchJWTBundles(ctx, w) },
	}
	if err := s.base.start(ctx, cfg.sourceConfig, watches, []chan struct{}{s.x509Set, s.jwtSet}); err != nil {
		return nil, s.base.closeOnError(err)
	}
	return s, nil
}

// Close closes the source, dropping the connection to the Workload API.
// Other source methods will return an error matching ErrSourceClosed after
// Close has been called. The underlying Workload API client will also be
// closed if it is owned by the BundleSource (i.e. not provided via the
// WithClient option). Close waits for the watch goroutines to exit, is
// idempotent and safe for concurrent use.
func (s *BundleSource) Close() error {
	return s.base.close()
}

// GetBundleForTrustDomain returns the SPIFFE bundle for the given trust
// domain. It implements the spiffebundle.Source interface. The bundle holds
// the trust domain's X.509 and JWT authorities; it is built on each call and
// belongs to the caller.
func (s *BundleSource) GetBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	x509Set, jwtSet := s.x509.Load(), s.jwt.Load()
	if x509Set == nil && jwtSet == nil {
		return nil, s.base.notReady("bundle")
	}
	bundle := spiffebundle.New(trustDomain)
	found := false
	if x509Set != nil {
		if b, ok := x509Set.Get(trustDomain); ok {
			bundle.SetX509Authorities(b.X509Authorities())
			found = true
		}
	}
	if jwtSet != nil {
		if b, ok := jwtSet.Get(trustDomain); ok {
			bundle.SetJWTAuthorities(b.JWTAuthorities())
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("workloadapi: no SPIFFE bundle for trust domain %q", trustDomain)
	}
	return bundle, nil
}

// GetX509BundleForTrustDomain returns the X.509 bundle for the given trust
// domain. It implements the x509bundle.Source interface.
func (s *BundleSource) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	set := s.x509.Load()
	if set == nil {
		return nil, s.base.notReady("X.509 bundle")
	}
	b, ok := set.Get(trustDomain)
	if !ok {
		return nil, fmt.Errorf("workloadapi: no X.509 bundle for trust domain %q", trustDomain)
	}
	return b, nil
}

// GetJWTBundleForTrustDomain returns the JWT bundle for the given trust
// domain. It implements the jwtbundle.Source interface.
func (s *BundleSource) GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	set := s.jwt.Load()
	if set == nil {
		return nil, s.base.notReady("JWT bundle")
	}
	b, ok := set.Get(trustDomain)
	if !ok {
		return nil, fmt.Errorf("workloadapi: no JWT bundle for trust domain %q", trustDomain)
	}
	return b, nil
}

// WaitUntilUpdated waits until the source is updated or the context is done,
// in which case ctx.Err() is returned.
func (s *BundleSource) WaitUntilUpdated(ctx context.Context) error {
	return s.base.waitUntilUpdated(ctx)
}

// Updated returns a channel that is sent on whenever the source is updated.
// The channel has a capacity of one: updates that arrive while a
// notification is pending are coalesced into it.
func (s *BundleSource) Updated() <-chan struct{} {
	return s.base.updated
}

// bundleSourceWatcher is the X509BundleWatcher and JWTBundleWatcher view of
// a BundleSource.
type bundleSourceWatcher BundleSource

func (w *bundleSourceWatcher) OnX509BundlesUpdate(set *x509bundle.Set) {
	w.x509.Store(set)
	w.base.triggerUpdated()
	markReady(&w.x509Once, w.x509Set)
}

func (w *bundleSourceWatcher) OnX509BundlesWatchError(err error) { w.base.setErr(err) }

func (w *bundleSourceWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	w.jwt.Store(set)
	w.base.triggerUpdated()
	markReady(&w.jwtOnce, w.jwtSet)
}

func (w *bundleSourceWatcher) OnJWTBundlesWatchError(err error) { w.base.setErr(err) }
