package issuer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// DefaultPollInterval is the default of Config.PollInterval.
const DefaultPollInterval = time.Second

// retryInterval is how long the issuer waits before it tries again to mint
// an SVID that failed.
const retryInterval = time.Second

// Config configures New. The struct is copied.
type Config struct {
	// Authority signs the SVIDs and supplies the trust domain's bundle; its
	// trust domain is the issuer's. Required.
	Authority Authority

	// Registry holds the registration entries: who gets which identity.
	// Required. The issuer indexes it in memory and follows its change
	// feed: at once when it is a registry.Notifier, else every
	// PollInterval, and whenever Sync is called.
	Registry index.Source

	// Attestor describes each caller by its selectors. Required; on Linux,
	// attest/unix. The caller's kernel credentials are passed along, so
	// that a process running as another user than the one that connected
	// is rejected.
	Attestor attest.WorkloadAttestor

	// ParentID, when not zero, restricts the issuer to the entries whose
	// parent ID equals it, as an agent serves only its own entries. Zero
	// means every entry applies.
	ParentID spiffeid.ID

	// Federation supplies the bundles of foreign trust domains, handed to
	// callers whose entries federate with them. Nil means no federated
	// bundles are served. A trust domain it has no bundle for is skipped.
	Federation spiffebundle.Source

	// X509SVIDTTL is the lifetime of X509-SVIDs for entries without their
	// own. Zero means ca.DefaultX509SVIDTTL (1 hour). The CA caps every
	// lifetime at its own expiry.
	X509SVIDTTL time.Duration

	// JWTSVIDTTL is the same for JWT-SVIDs. Zero means
	// ca.DefaultJWTSVIDTTL (5 minutes).
	JWTSVIDTTL time.Duration

	// LazyRotation keeps X509-SVIDs signed by a CA that is no longer active
	// until their own refresh time, as SPIRE agents do, which spreads the
	// work of a CA rotation over half an SVID lifetime. The default (false)
	// re-mints them as soon as the active CA changes, so that every SVID
	// chains to the active CA. Tainted CAs are replaced promptly either way.
	LazyRotation bool

	// PollInterval is how often the registry's change feed is read when the
	// registry is not a registry.Notifier. Zero means DefaultPollInterval.
	PollInterval time.Duration

	// Now returns the current time for refresh decisions. Nil means
	// time.Now.
	Now func() time.Time

	// Logger receives minting and refresh events (entry IDs, SPIFFE IDs,
	// serial numbers) and failures. Nil discards them.
	Logger *slog.Logger
}

// Issuer is an embedded Workload API handler: it attests each caller,
// finds the registration entries that apply to it, and serves it X509-SVIDs
// and JWT-SVIDs minted by the local CA, with the trust domain's bundle.
//
// X509-SVIDs are minted once per entry, each with its own key generated in
// memory, cached, and shared by every caller the entry applies to. They are
// re-minted at half their life, when their entry changes, when the active CA
// changes (unless Config.LazyRotation) and when their CA is tainted. Open
// Workload API streams receive the new view at once; a caller whose last
// entry is deleted loses its stream with PermissionDenied.
//
// An Issuer implements endpoint.Handler and is safe for concurrent use.
// It owns one goroutine, and one more per Start; Close stops them.
type Issuer struct {
	cfg  Config
	log  *slog.Logger
	idx  *index.Index
	td   spiffeid.TrustDomain
	now  func() time.Time
	poll time.Duration

	ctx    context.Context // background work; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	wake   chan struct{} // capacity 1: refresh every view now

	jwt jwtCache

	// mu guards the fields below. It is held while X509-SVIDs are minted
	// (local key generation and signing, no I/O): serialising mints is
	// what keeps one SVID per entry.
	mu       sync.Mutex
	closed   bool
	svids    map[string]*minted // by entry ID
	mints    uint64             // X509-SVIDs minted so far
	subs     map[*subscription]struct{}
	bundle   *spiffebundle.Bundle
	activeCA []byte          // DER of the active X.509 CA certificate
	tainted  map[string]bool // DER of the tainted X.509 CA certificates
}

var _ endpoint.Handler = (*Issuer)(nil)

// New builds an issuer: it checks cfg, reads the CA's state and indexes
// every entry of the registry, then starts following the registry and the
// CA in the background. ctx bounds construction only.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	switch {
	case cfg.Authority == nil:
		return nil, errors.New("issuer: Config.Authority is required")
	case cfg.Registry == nil:
		return nil, errors.New("issuer: Config.Registry is required")
	case cfg.Attestor == nil:
		return nil, errors.New("issuer: Config.Attestor is required")
	case cfg.X509SVIDTTL < 0 || cfg.JWTSVIDTTL < 0 || cfg.PollInterval < 0:
		return nil, errors.New("issuer: durations must not be negative")
	}
	b := cfg.Authority.Bundle()
	if b == nil || b.TrustDomain().IsZero() {
		return nil, errors.New("issuer: the authority has no bundle")
	}
	i := &Issuer{
		cfg:     cfg,
		log:     cfg.Logger,
		td:      b.TrustDomain(),
		now:     cfg.Now,
		poll:    cfg.PollInterval,
		wake:    make(chan struct{}, 1),
		svids:   make(map[string]*minted),
		subs:    make(map[*subscription]struct{}),
		tainted: make(map[string]bool),
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.poll == 0 {
		i.poll = DefaultPollInterval
	}
	idx, err := index.New(ctx, cfg.Registry, index.Config{PollInterval: i.poll})
	if err != nil {
		return nil, fmt.Errorf("issuer: indexing the registry: %w", err)
	}
	i.idx = idx
	i.refreshCA()
	i.ctx, i.cancel = context.WithCancel(context.Background())
	// Subscribe before the goroutine starts, so that no CA change made after
	// New returns can be missed.
	caUpdates, unsubscribe := cfg.Authority.Subscribe()
	i.wg.Go(func() {
		defer unsubscribe()
		i.run(caUpdates)
	})
	return i, nil
}

// Close stops the issuer's goroutines, including the Workload API servers
// of Start, and waits for them to exit. Open streams end with Unavailable.
// Close is idempotent and safe for concurrent use; it does not close the
// Authority, the Registry or the Attestor, which the caller owns.
func (i *Issuer) Close() error {
	i.once.Do(func() {
		i.mu.Lock()
		i.closed = true
		i.mu.Unlock()
		i.cancel()
	})
	i.wg.Wait()
	return nil
}

// TrustDomain returns the trust domain the issuer serves: the Authority's.
func (i *Issuer) TrustDomain() spiffeid.TrustDomain { return i.td }

// Sync applies the registry changes made since the last sync and pushes
// the views that changed to open streams, without waiting for the next
// poll. A program that writes to a registry that is not a
// registry.Notifier calls it after writing, so that the change reaches
// workloads at once.
func (i *Issuer) Sync(ctx context.Context) error {
	if _, err := i.idx.Sync(ctx); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	i.poke()
	return nil
}

// Serve serves the Workload API with the issuer as its handler on lis until
// ctx is done, as endpoint.Server.Serve does; it closes lis when it
// returns. The caller owns the goroutine that runs Serve.
func (i *Issuer) Serve(ctx context.Context, lis net.Listener) error {
	srv, err := endpoint.New(endpoint.Config{Handler: i, Logger: i.log})
	if err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if err := srv.Serve(ctx, lis); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	return nil
}

// Start listens on a unix socket at path with permission bits mode (see
// endpoint.ListenUnix; 0o700 admits only the issuer's own user) and serves
// the Workload API on it in the background until Close. It returns once the
// socket accepts connections, with the address for workloadapi.WithAddr:
// "unix://" followed by path.
func (i *Issuer) Start(path string, mode fs.FileMode) (addr string, err error) {
	i.mu.Lock()
	closed := i.closed
	i.mu.Unlock()
	if closed {
		return "", errors.New("issuer: closed")
	}
	lis, err := endpoint.ListenUnix(path, mode)
	if err != nil {
		return "", fmt.Errorf("issuer: %w", err)
	}
	i.wg.Go(func() {
		if err := i.Serve(i.ctx, lis); err != nil {
			i.log.Error("workload API server stopped", "path", path, "err", err)
		}
	})
	return "unix://" + path, nil
}

// poke asks the background goroutine to refresh every view.
func (i *Issuer) poke() {
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// run follows the registry and the CA, and re-mints SVIDs as they age,
// until Close.
func (i *Issuer) run(caUpdates <-chan struct{}) {
	var notify <-chan struct{}
	if n, ok := i.cfg.Registry.(registry.Notifier); ok {
		notify = n.Notify()
	}
	tick := time.NewTicker(i.poll)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-i.ctx.Done():
			return
		case <-notify:
			i.syncIndex()
		case <-tick.C:
			if i.syncIndex() == 0 {
				continue // nothing new: the timer still covers re-mints
			}
		case <-caUpdates:
			i.refreshCA()
		case <-timer.C:
		case <-i.wake:
		}
		next := i.refreshAll()
		timer.Reset(max(next.Sub(i.now()), 0))
	}
}

// syncIndex applies the registry's new changes and returns how many.
func (i *Issuer) syncIndex() int {
	n, err := i.idx.Sync(i.ctx)
	if err != nil && i.ctx.Err() == nil {
		i.log.Warn("reading the registry's changes failed", "err", err)
	}
	return n
}

// refreshCA reads the CA's bundle, active X.509 CA and tainted CAs.
func (i *Issuer) refreshCA() {
	b := i.cfg.Authority.Bundle()
	var active []byte
	if a := i.cfg.Authority.X509Authority(); a != nil {
		active = a.Certificate().Raw
	}
	tainted := make(map[string]bool)
	if tr, ok := i.cfg.Authority.(TaintReporter); ok {
		for _, c := range tr.TaintedX509CAs() {
			tainted[string(c.Raw)] = true
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if b != nil && b.TrustDomain() == i.td {
		i.bundle = b
	}
	i.activeCA = active
	i.tainted = tainted
}

// refreshAll recomputes the view of every open subscription, re-minting what
// is due, notifies the subscriptions whose view changed, forgets SVIDs no
// one uses any more, and returns when the next re-mint falls due.
func (i *Issuer) refreshAll() time.Time {
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	next := now.Add(time.Hour)
	used := make(map[*x509svid.SVID]bool)
	for sub := range i.subs {
		v, err := i.viewLocked(i.ctx, sub.selectors, now)
		if err != nil {
			if i.ctx.Err() == nil {
				i.log.Error("refreshing a caller's view failed; keeping the previous one",
					"pid", sub.caller.PID, "uid", sub.caller.UID, "err", err)
			}
			next = minTime(next, now.Add(retryInterval))
			continue
		}
		for _, s := range v.svids {
			used[s] = true
		}
		sub.update(v)
	}
	for id, m := range i.svids {
		if !used[m.svid] && !now.Before(m.refreshAt) {
			delete(i.svids, id)
			continue
		}
		// An unused SVID counts too: a stream that opens later may take it
		// from the cache without waking this goroutine.
		next = minTime(next, m.refreshAt)
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
