package fedpoll

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The first fetch of a relationship that fails is tried again after
// firstRetryMin, then twice as long each time, up to the regular poll
// interval: a relationship made while its peer is down starts as soon as
// the peer is up, not at the next regular poll.
const firstRetryMin = time.Second

// Config configures New.
type Config struct {
	// TrustDomain is the server's own trust domain, never accepted
	// through federation.
	TrustDomain spiffeid.TrustDomain

	// Static are the relationships of the server's configuration, checked
	// (see Check), in its order. They are polled for the server's life.
	Static []Checked

	// Store keeps the relationships made through the admin API, polled as
	// they are created, changed and deleted. Nil: Static only.
	Store registry.FederationStore

	// Bundles is where every fetched bundle that changed is stored.
	Bundles registry.BundleStore

	// Source holds the bundles that authenticate an https_spiffe
	// endpoint.
	Source BundleSource

	// WebPKIRoots are the roots of the https_web endpoints of the
	// relationships of Store; nil means the system roots.
	WebPKIRoots *x509.CertPool

	// Refresh is the longest time between two polls of an endpoint,
	// Timeout the bound of one fetch, Concurrency the number of fetches
	// under way at once in each of two pools (see fetchSlots), and
	// PollInterval how often Store is read again besides its
	// notifications. All must be positive.
	Refresh, Timeout, PollInterval time.Duration
	Concurrency                    int

	// Logger receives the events of the polls.
	Logger *slog.Logger
}

// Poller runs one watcher per federation relationship: those of
// Config.Static for the server's life, and those of Config.Store as they
// are created, changed and deleted, read again when the store tells of a
// write, when the admin API made one, and every PollInterval. A
// relationship of the configuration wins over a stored one with the same
// trust domain, which is then ignored (and logged).
type Poller struct {
	cfg      Config
	log      *slog.Logger
	store    registry.FederationStore // nil: Config.Static only
	slots    *fetchSlots              // bound the fetches of every relationship
	static   []*watcher               // in the order of Config.Static
	isStatic map[spiffeid.TrustDomain]bool
	wake     chan struct{}

	mu      sync.Mutex
	dynamic map[spiffeid.TrustDomain]*dynamicWatcher
	ignored map[spiffeid.TrustDomain]string // why a stored relationship is not polled, logged once
}

// dynamicWatcher is the watcher of a stored relationship while it runs.
type dynamicWatcher struct {
	w      *watcher
	stored registry.FederationRelationship
	cancel context.CancelFunc
	done   chan struct{}
}

// newWatcher prepares the watcher of a checked relationship.
func (p *Poller) newWatcher(r Checked, source string) *watcher {
	return &watcher{
		rel:        r,
		own:        p.cfg.TrustDomain,
		trust:      p.cfg.Source,
		bundles:    p.cfg.Bundles,
		log:        p.log.With("component", "federation", "trust_domain", r.TrustDomain.Name(), "url", r.URL, "profile", r.Profile, "source", source),
		refresh:    p.cfg.Refresh,
		timeout:    p.cfg.Timeout,
		firstRetry: firstRetryMin,
		slots:      p.slots,
	}
}

// New prepares the watchers of every relationship; Run starts them. It
// names in the log the stored bundles of trust domains without a
// relationship, which are kept (they may have been set by hand). ctx
// bounds the reading of the stores.
func New(ctx context.Context, cfg Config) (*Poller, error) {
	p := &Poller{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    cfg.Store,
		slots:    newFetchSlots(cfg.Concurrency),
		isStatic: map[spiffeid.TrustDomain]bool{},
		wake:     make(chan struct{}, 1),
		dynamic:  map[spiffeid.TrustDomain]*dynamicWatcher{},
		ignored:  map[spiffeid.TrustDomain]string{},
	}
	for _, r := range cfg.Static {
		p.isStatic[r.TrustDomain] = true
		p.static = append(p.static, p.newWatcher(r, "config"))
	}
	related := maps.Clone(p.isStatic)
	if p.store != nil {
		stored, err := p.store.ListFederationRelationships(ctx)
		if err != nil {
			return nil, fmt.Errorf("server: reading the federation relationships: %w", err)
		}
		for _, r := range stored {
			related[r.TrustDomain] = true
		}
	}
	bundles, err := cfg.Bundles.ListBundles(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: reading the federated bundles: %w", err)
	}
	for _, b := range bundles {
		if !related[b.TrustDomain] {
			p.log.Info("a federated bundle without a federation relationship is kept; `bundle delete` ends the federation",
				"trust_domain", b.TrustDomain.Name())
		}
	}
	return p, nil
}

// poke has the manager read the stored relationships again soon.
func (p *Poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run polls every relationship until ctx is done, then waits for the
// watchers to stop.
func (p *Poller) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, w := range p.static {
		wg.Go(func() { w.run(ctx) })
	}
	defer wg.Wait()
	if p.store == nil {
		<-ctx.Done()
		return
	}
	var changes <-chan struct{} // nil, never ready, for a store that tells of no write
	if n, ok := p.store.(registry.Notifier); ok {
		ch, cancel := n.Subscribe(registry.TopicFederation)
		defer cancel()
		changes = ch
	}
	poll := time.NewTicker(p.cfg.PollInterval)
	defer poll.Stop()
	defer p.stopAll()
	for {
		p.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changes:
		case <-p.wake:
		case <-poll.C:
		}
	}
}

// reconcile starts, restarts and stops the watchers of the stored
// relationships so that they match the store.
func (p *Poller) reconcile(ctx context.Context) {
	stored, err := p.store.ListFederationRelationships(ctx)
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("reading the federation relationships failed; the running ones go on", "component", "federation", "err", err)
		}
		return
	}
	want := map[spiffeid.TrustDomain]bool{}
	for _, sr := range stored {
		td := sr.TrustDomain
		if p.isStatic[td] {
			p.ignore(td, "a federation relationship in the datastore is ignored: the server's configuration has one with the same trust domain, which wins")
			continue
		}
		p.mu.Lock()
		cur := p.dynamic[td]
		p.mu.Unlock()
		if cur != nil && sameRelationship(cur.stored, sr) {
			want[td] = true
			continue
		}
		rel, err := p.checkStored(ctx, sr)
		if err != nil {
			if _, ok := errors.AsType[StoreError](err); ok {
				// Not the relationship's fault: keep what runs.
				want[td] = cur != nil
				p.log.Warn("reading the stored bundle failed", "component", "federation", "trust_domain", td.Name(), "err", err)
				continue
			}
			p.ignore(td, "a federation relationship in the datastore is not polled: "+err.Error())
			continue
		}
		p.mu.Lock()
		delete(p.ignored, td)
		p.mu.Unlock()
		want[td] = true
		p.stop(td)
		p.start(ctx, rel, sr, cur != nil)
	}
	p.mu.Lock()
	var gone []spiffeid.TrustDomain
	for td := range p.dynamic {
		if !want[td] {
			gone = append(gone, td)
		}
	}
	for td := range p.ignored {
		if !slices.ContainsFunc(stored, func(r registry.FederationRelationship) bool { return r.TrustDomain == td }) {
			delete(p.ignored, td)
		}
	}
	p.mu.Unlock()
	for _, td := range gone {
		if p.stop(td) {
			p.log.Info("federation relationship removed; its bundle endpoint is no longer polled, the bundle is kept", "component", "federation", "trust_domain", td.Name())
		}
	}
}

// ignore logs once why a stored relationship is not polled, and stops its
// watcher if one runs.
func (p *Poller) ignore(td spiffeid.TrustDomain, why string) {
	p.mu.Lock()
	logged := p.ignored[td] == why
	p.ignored[td] = why
	p.mu.Unlock()
	p.stop(td)
	if !logged {
		p.log.Warn(why, "component", "federation", "trust_domain", td.Name())
	}
}

func (p *Poller) start(ctx context.Context, rel Checked, sr registry.FederationRelationship, restarted bool) {
	w := p.newWatcher(rel, "datastore")
	wctx, cancel := context.WithCancel(ctx)
	d := &dynamicWatcher{w: w, stored: sr, cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	p.dynamic[rel.TrustDomain] = d
	p.mu.Unlock()
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
func (p *Poller) stop(td spiffeid.TrustDomain) bool {
	p.mu.Lock()
	d := p.dynamic[td]
	delete(p.dynamic, td)
	p.mu.Unlock()
	if d == nil {
		return false
	}
	d.cancel()
	<-d.done
	return true
}

func (p *Poller) stopAll() {
	p.mu.Lock()
	tds := slices.Collect(func(yield func(spiffeid.TrustDomain) bool) {
		for td := range p.dynamic {
			if !yield(td) {
				return
			}
		}
	})
	p.mu.Unlock()
	for _, td := range tds {
		p.stop(td)
	}
}

// Stats returns the fetches of each relationship polled now: those of
// Config.Static in its order, then the stored ones by trust domain name.
func (p *Poller) Stats() []Stats {
	var out []Stats
	for _, w := range p.watchers() {
		out = append(out, w.stats.snapshot(w.rel.TrustDomain))
	}
	return out
}

// watchers returns the watchers running now: the configuration's in its
// order, then the stored ones by trust domain name.
func (p *Poller) watchers() []*watcher {
	out := slices.Clone(p.static)
	p.mu.Lock()
	var dyn []*watcher
	for _, d := range p.dynamic {
		dyn = append(dyn, d.w)
	}
	p.mu.Unlock()
	slices.SortFunc(dyn, func(a, b *watcher) int { return a.rel.TrustDomain.Compare(b.rel.TrustDomain) })
	return append(out, dyn...)
}
