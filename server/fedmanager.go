package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The first fetch of a relationship that fails is tried again after
// firstRetryMin, then twice as long each time, up to the regular poll
// interval: a relationship made while its peer is down starts as soon as
// the peer is up, not at the next regular poll.
const firstRetryMin = time.Second

// fedManager runs one watcher per federation relationship: those of
// Config.Federation for the server's life, and those of Stores.Federation
// as they are created, changed and deleted, read again when the store
// tells of a write, when the admin API made one, and every PollInterval.
// A relationship of the configuration wins over a stored one with the same
// trust domain, which is then ignored (and logged).
type fedManager struct {
	s        *Server
	store    registry.FederationStore // nil: Config.Federation only
	static   []*fedWatcher            // in the order of Config.Federation
	isStatic map[spiffeid.TrustDomain]bool
	wake     chan struct{}

	mu      sync.Mutex
	dynamic map[spiffeid.TrustDomain]*dynamicWatcher
	ignored map[spiffeid.TrustDomain]string // why a stored relationship is not polled, logged once
}

// dynamicWatcher is the watcher of a stored relationship while it runs.
type dynamicWatcher struct {
	w      *fedWatcher
	stored registry.FederationRelationship
	cancel context.CancelFunc
	done   chan struct{}
}

// newWatcher prepares the watcher of a validated relationship.
func (s *Server) newWatcher(r relationship, source string) *fedWatcher {
	return &fedWatcher{
		rel:        r,
		trust:      s.trust,
		bundles:    s.stores.Bundles,
		log:        s.log.With("component", "federation", "trust_domain", r.TrustDomain.Name(), "url", r.URL, "profile", r.Profile, "source", source),
		refresh:    s.cfg.FederationRefresh,
		timeout:    s.cfg.FederationTimeout,
		firstRetry: firstRetryMin,
		slots:      s.fetchSlots,
	}
}

func newFedManager(s *Server, static []relationship) *fedManager {
	m := &fedManager{
		s:        s,
		store:    s.stores.Federation,
		isStatic: map[spiffeid.TrustDomain]bool{},
		wake:     make(chan struct{}, 1),
		dynamic:  map[spiffeid.TrustDomain]*dynamicWatcher{},
		ignored:  map[spiffeid.TrustDomain]string{},
	}
	for _, r := range static {
		m.isStatic[r.TrustDomain] = true
		m.static = append(m.static, s.newWatcher(r, "config"))
	}
	return m
}

// poke has the manager read the stored relationships again soon.
func (m *fedManager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// run polls every relationship until ctx is done, then waits for the
// watchers to stop.
func (m *fedManager) run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range m.static {
		wg.Go(func() { w.run(ctx) })
	}
	defer wg.Wait()
	if m.store == nil {
		<-ctx.Done()
		return
	}
	changes, cancel := subscribe(m.store, registry.TopicFederation)
	defer cancel()
	poll := time.NewTicker(m.s.cfg.PollInterval)
	defer poll.Stop()
	defer m.stopAll()
	for {
		m.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-m.wake:
		case <-poll.C:
		}
	}
}

// reconcile starts, restarts and stops the watchers of the stored
// relationships so that they match the store.
func (m *fedManager) reconcile(ctx context.Context) {
	stored, err := m.store.ListFederationRelationships(ctx)
	if err != nil {
		if ctx.Err() == nil {
			m.s.log.Warn("reading the federation relationships failed; the running ones go on", "component", "federation", "err", err)
		}
		return
	}
	want := map[spiffeid.TrustDomain]bool{}
	for _, sr := range stored {
		td := sr.TrustDomain
		if m.isStatic[td] {
			m.ignore(td, "a federation relationship in the datastore is ignored: the server's configuration has one with the same trust domain, which wins")
			continue
		}
		m.mu.Lock()
		cur := m.dynamic[td]
		m.mu.Unlock()
		if cur != nil && sameRelationship(cur.stored, sr) {
			want[td] = true
			continue
		}
		rel, err := m.s.checkStored(ctx, sr)
		if err != nil {
			if _, ok := errors.AsType[storeError](err); ok {
				// Not the relationship's fault: keep what runs.
				want[td] = cur != nil
				m.s.log.Warn("reading the stored bundle failed", "component", "federation", "trust_domain", td.Name(), "err", err)
				continue
			}
			m.ignore(td, "a federation relationship in the datastore is not polled: "+err.Error())
			continue
		}
		m.mu.Lock()
		delete(m.ignored, td)
		m.mu.Unlock()
		want[td] = true
		m.stop(td)
		m.start(ctx, rel, sr, cur != nil)
	}
	m.mu.Lock()
	var gone []spiffeid.TrustDomain
	for td := range m.dynamic {
		if !want[td] {
			gone = append(gone, td)
		}
	}
	for td := range m.ignored {
		if !slices.ContainsFunc(stored, func(r registry.FederationRelationship) bool { return r.TrustDomain == td }) {
			delete(m.ignored, td)
		}
	}
	m.mu.Unlock()
	for _, td := range gone {
		if m.stop(td) {
			m.s.log.Info("federation relationship removed; its bundle endpoint is no longer polled, the bundle is kept", "component", "federation", "trust_domain", td.Name())
		}
	}
}

// ignore logs once why a stored relationship is not polled, and stops its
// watcher if one runs.
func (m *fedManager) ignore(td spiffeid.TrustDomain, why string) {
	m.mu.Lock()
	logged := m.ignored[td] == why
	m.ignored[td] = why
	m.mu.Unlock()
	m.stop(td)
	if !logged {
		m.s.log.Warn(why, "component", "federation", "trust_domain", td.Name())
	}
}

func (m *fedManager) start(ctx context.Context, rel relationship, sr registry.FederationRelationship, restarted bool) {
	w := m.s.newWatcher(rel, "datastore")
	wctx, cancel := context.WithCancel(ctx)
	d := &dynamicWatcher{w: w, stored: sr, cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	m.dynamic[rel.TrustDomain] = d
	m.mu.Unlock()
	if restarted {
		w.log.Info("federation relationship changed; polling its bundle endpoint")
	} else {
		w.log.Info("federation relationship added; polling its bundle endpoint")
	}
	go func() {
		defer close(d.done)
		w.run(wctx)
	}()
}

// stop stops the watcher of a stored relationship and reports whether one
// ran.
func (m *fedManager) stop(td spiffeid.TrustDomain) bool {
	m.mu.Lock()
	d := m.dynamic[td]
	delete(m.dynamic, td)
	m.mu.Unlock()
	if d == nil {
		return false
	}
	d.cancel()
	<-d.done
	return true
}

func (m *fedManager) stopAll() {
	m.mu.Lock()
	tds := slices.Collect(func(yield func(spiffeid.TrustDomain) bool) {
		for td := range m.dynamic {
			if !yield(td) {
				return
			}
		}
	})
	m.mu.Unlock()
	for _, td := range tds {
		m.stop(td)
	}
}

// watchers returns the watchers running now: the configuration's in its
// order, then the stored ones by trust domain name.
func (m *fedManager) watchers() []*fedWatcher {
	out := slices.Clone(m.static)
	m.mu.Lock()
	var dyn []*fedWatcher
	for _, d := range m.dynamic {
		dyn = append(dyn, d.w)
	}
	m.mu.Unlock()
	slices.SortFunc(dyn, func(a, b *fedWatcher) int { return a.rel.TrustDomain.Compare(b.rel.TrustDomain) })
	return append(out, dyn...)
}

// sameRelationship reports whether two stored relationships poll alike.
func sameRelationship(a, b registry.FederationRelationship) bool {
	return a.TrustDomain == b.TrustDomain && a.BundleEndpointURL == b.BundleEndpointURL &&
		a.BundleEndpointProfile == b.BundleEndpointProfile && a.EndpointSPIFFEID == b.EndpointSPIFFEID &&
		bytes.Equal(a.TrustDomainBundle, b.TrustDomainBundle)
}

// toRelationship converts a stored relationship, parsing its bundle.
func (s *Server) toRelationship(sr registry.FederationRelationship) (Relationship, error) {
	r := Relationship{
		TrustDomain:      sr.TrustDomain,
		URL:              sr.BundleEndpointURL,
		Profile:          Profile(sr.BundleEndpointProfile),
		EndpointSPIFFEID: sr.EndpointSPIFFEID,
	}
	if r.Profile == ProfileHTTPSWeb {
		r.WebPKIRoots = s.cfg.FederationWebPKIRoots
	}
	if len(sr.TrustDomainBundle) > 0 {
		b, err := spiffebundle.Parse(sr.TrustDomain, sr.TrustDomainBundle)
		if err != nil {
			return r, fmt.Errorf("the trust domain bundle: %w", err)
		}
		r.BootstrapBundle = b
	}
	return r, nil
}

// checkStored validates a stored relationship as New validates those of
// the configuration. A storeError is a failure to read the bundle store.
func (s *Server) checkStored(ctx context.Context, sr registry.FederationRelationship) (relationship, error) {
	r, err := s.toRelationship(sr)
	if err != nil {
		return relationship{}, err
	}
	return validateRelationship(s.cfg.TrustDomain, r, s.bundleStored(ctx))
}

// bundleStored says whether the bundle store holds a bundle of a trust
// domain.
func (s *Server) bundleStored(ctx context.Context) func(spiffeid.TrustDomain) (bool, error) {
	return func(td spiffeid.TrustDomain) (bool, error) {
		_, err := s.stores.Bundles.GetBundle(ctx, td)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, registry.ErrNotFound):
			return false, nil
		}
		return false, fmt.Errorf("reading the stored bundle: %w", err)
	}
}
