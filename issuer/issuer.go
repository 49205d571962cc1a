package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/broadcast"
	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/issuer/internal/attestation"
	"github.com/spiffekit/spiffekit/issuer/internal/authorities"
	"github.com/spiffekit/spiffekit/issuer/internal/clockstep"
	"github.com/spiffekit/spiffekit/issuer/internal/jwtmint"
	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/issuer/internal/selection"
	"github.com/spiffekit/spiffekit/issuer/internal/viewcache"
	"github.com/spiffekit/spiffekit/issuer/internal/witmint"
	"github.com/spiffekit/spiffekit/issuer/internal/x509store"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Defaults of Config.PollInterval: a registry that signals its writes
// (registry.Notifier) is read at once on each signal, and polled only as a
// safety net; one that does not is polled often.
const (
	DefaultPollInterval       = time.Second
	DefaultSafetyPollInterval = 30 * time.Second
)

// Config configures New. The struct is copied.
type Config struct {
	// Trust supplies the trust domain's bundle, the active X.509 CA and
	// the tainted CAs, and signals their changes; the bundle's trust
	// domain is the issuer's. Required. For a local CA,
	// TrustFromAuthority.
	Trust Trust

	// Signer signs the SVIDs. Required. For a local CA, NewLocalSigner; a
	// node agent passes one that has its server sign. A failing Signer is
	// retried (see Signer), and the SVID it should have replaced is served
	// until it expires.
	Signer Signer

	// PreMint keeps an X509-SVID for every entry the issuer serves (all of
	// the registry's, or those of ParentID), not only for the entries of
	// the callers connected now, so that a workload's first request is
	// answered from memory. Entries are minted in batches when they appear
	// and as their SVIDs age, and forgotten when they are deleted. Without
	// ParentID, that is every entry of the registry: PreMint suits a
	// registry of the issuer's own entries, such as a node agent's copy,
	// not a large shared one.
	PreMint bool

	// PreMintLimit, with PreMint, bounds the entries whose X509-SVIDs are
	// kept ahead of need: when the issuer serves more, those first by
	// entry ID are, and the others are minted when a caller asks, as
	// without PreMint. The entries of the callers connected now are
	// minted whatever the limit. Zero means no limit.
	PreMintLimit int

	// MaxBatch caps the X509-SVIDs asked of the Signer in one call. When
	// more are due at once (a CA rotation, a registry sync, a caller with
	// many entries), they go in several calls. Zero means DefaultMaxBatch.
	MaxBatch int

	// Registry holds the registration entries: who gets which identity.
	// Required. The issuer indexes it in memory and follows its change
	// feed: at once when it is a registry.Notifier, else every
	// PollInterval, and whenever Sync is called.
	Registry index.Source

	// Attestor describes each caller by its selectors. Required; on Linux,
	// attest/unix. It is given what the Workload API server recorded of
	// the caller at accept (endpoint.Caller.Workload: kernel credentials,
	// a pidfd, start time, executable), so that a process that is not the
	// one that connected, runs as another user, or executes another file
	// than it did at accept is rejected.
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

	// WITSVIDTTL is the lifetime asked for the WIT-SVIDs served to
	// FetchWITSVID (see Issuer.SubscribeWIT). Zero means the Signer's
	// default (ca.DefaultWITSVIDTTL, 1 hour, for a LocalSigner).
	WITSVIDTTL time.Duration

	// LazyRotation keeps X509-SVIDs signed by a CA that is no longer active
	// until their own refresh time, as SPIRE agents do, which spreads the
	// work of a CA rotation over half an SVID lifetime. The default (false)
	// re-mints them as soon as the active CA changes, so that every SVID
	// chains to the active CA. Tainted CAs are replaced promptly either way.
	LazyRotation bool

	// PollInterval is how often the registry's change feed is read besides
	// the registry's signals. Zero means DefaultSafetyPollInterval (30 s)
	// for a registry.Notifier, DefaultPollInterval (1 s) for another.
	PollInterval time.Duration

	// Now returns the current time for refresh decisions. Nil means
	// time.Now.
	Now func() time.Time

	// Logger receives minting and refresh events (entry IDs, SPIFFE IDs,
	// serial numbers) and failures. Nil discards them.
	Logger *slog.Logger

	// Observer, when not nil, is told of every Signer call and caller
	// attestation (see Observer). Nil costs nothing.
	Observer Observer
}

// Issuer is an embedded Workload API handler: it attests each caller,
// finds the registration entries that apply to it, and serves it X509-SVIDs
// and JWT-SVIDs its Config.Signer signed, with the trust domain's bundle.
// The Workload API server of package workloadapi/endpoint serves it.
//
// X509-SVIDs are minted once per entry, each with its own key generated in
// memory, cached, and shared by every caller the entry applies to. They are
// re-minted at half their life, when their entry changes, when the active CA
// changes (unless Config.LazyRotation) and when their CA is tainted; the
// ones due together are signed in one batch. Open Workload API streams
// receive the new view at once; a caller whose last entry is deleted loses
// its stream with PermissionDenied.
//
// New starts nothing: Run follows the registry and the Trust, keeps the
// SVIDs fresh, and mints the SVIDs new callers lack. An Issuer implements
// endpoint.Handler and is safe for concurrent use.
type Issuer struct {
	cfg  Config
	log  *slog.Logger
	idx  *index.Index
	td   spiffeid.TrustDomain
	now  func() time.Time
	poll time.Duration

	wake chan struct{}    // capacity 1: refresh every view now
	life *lifecycle.Guard // Run once, not after Close

	att      attestation.Attestor
	signer   Signer
	backoff  func(failures int) time.Duration
	maxBatch int

	jwt *jwtmint.Minter
	wit *witmint.Minter // one WIT-SVID per entry, shared by its callers (WIT rule 13)
	// witTaints wakes the FetchWITSVID subscriptions when the tainted WIT
	// keys change, and when WIT-SVIDs of a key that left the bundle are
	// dropped.
	witTaints broadcast.Hub

	// mu guards the fields below. It is never held across a Signer call:
	// a mint claims its entry in inflight, signs without the lock, then
	// publishes under it, which keeps one SVID per entry.
	mu         sync.Mutex
	stopped    bool                   // Run returned, or Close was called: no more mints
	pending    []*mintCall            // claimed for new callers, for Run to mint
	preMinting bool                   // a batch of pre-mints is under way in the background
	background sync.WaitGroup         // the pre-mint batches; Run waits for them
	mintReady  chan struct{}          // capacity 1: pending is not empty
	svids      x509store.Store        // by entry ID
	inflight   map[string]*mintCall   // by entry ID: mints under way
	retry      map[string]retry.State // by entry ID: mints that failed
	subs       map[*subscription]struct{}
	auth       authorities.State // what the Trust last said
	views      viewcache.Cache   // the Snapshots served since the last refresh
}

var _ endpoint.WITHandler = (*Issuer)(nil)

// New builds an issuer: it checks cfg, reads the Trust and indexes every
// entry of the registry. It starts nothing; see Run. ctx bounds
// construction only.
func New(ctx context.Context, cfg Config) (*Issuer, error) {
	switch {
	case cfg.Trust == nil:
		return nil, errors.New("issuer: Config.Trust is required")
	case cfg.Signer == nil:
		return nil, errors.New("issuer: Config.Signer is required")
	case cfg.Registry == nil:
		return nil, errors.New("issuer: Config.Registry is required")
	case cfg.Attestor == nil:
		return nil, errors.New("issuer: Config.Attestor is required")
	case cfg.X509SVIDTTL < 0 || cfg.JWTSVIDTTL < 0 || cfg.WITSVIDTTL < 0 || cfg.PollInterval < 0:
		return nil, errors.New("issuer: durations must not be negative")
	case cfg.MaxBatch < 0:
		return nil, errors.New("issuer: Config.MaxBatch must not be negative")
	}
	b := cfg.Trust.Bundle()
	if b == nil || b.TrustDomain().IsZero() {
		return nil, errors.New("issuer: the trust has no bundle")
	}
	i := &Issuer{
		cfg:       cfg,
		log:       cfg.Logger,
		td:        b.TrustDomain(),
		now:       cfg.Now,
		poll:      cfg.PollInterval,
		signer:    cfg.Signer,
		backoff:   retry.Remote,
		maxBatch:  cfg.MaxBatch,
		wake:      make(chan struct{}, 1),
		mintReady: make(chan struct{}, 1),
		life: lifecycle.NewGuard(lifecycle.Once,
			errClosed, errors.New("issuer: Run called twice")),
		inflight: make(map[string]*mintCall),
		retry:    make(map[string]retry.State),
		subs:     make(map[*subscription]struct{}),
	}
	if _, ok := cfg.Signer.(*LocalSigner); ok {
		i.backoff = retry.Local
	}
	if i.maxBatch == 0 {
		i.maxBatch = DefaultMaxBatch
	}
	if i.log == nil {
		i.log = slog.New(slog.DiscardHandler)
	}
	if i.now == nil {
		i.now = time.Now
	}
	if i.poll == 0 {
		i.poll = DefaultPollInterval
		if _, ok := cfg.Registry.(registry.Notifier); ok {
			i.poll = DefaultSafetyPollInterval
		}
	}
	idx, err := index.New(ctx, cfg.Registry, index.Config{PollInterval: i.poll, Now: i.now, OnExpire: func(e registry.Entry) {
		i.log.Info("entry expired; its SVIDs are served no more", "entry_id", e.ID, "spiffe_id", e.SPIFFEID.String(), "expired_at", e.ExpiresAt)
	}})
	if err != nil {
		return nil, fmt.Errorf("issuer: indexing the registry: %w", err)
	}
	i.idx = idx
	i.jwt = i.newJWTMinter()
	i.wit = i.newWITMinter()
	i.att = attestation.Attestor{Attestor: cfg.Attestor, Index: idx, Observer: cfg.Observer, Log: i.log}
	i.refreshCA()
	return i, nil
}

// errClosed fails Run and the callers that subscribe once Close was
// called.
var errClosed = fmt.Errorf("issuer: %w: closed", endpoint.ErrUnavailable)

// errStopped fails the callers that need a new X509-SVID once Run has
// returned.
var errStopped = fmt.Errorf("issuer: %w: not running", endpoint.ErrUnavailable)

// Run keeps the issuer's SVIDs fresh until ctx is done or Close is called,
// then returns nil: it follows the registry (at once when it is a
// registry.Notifier, else every PollInterval) and the Trust, pre-mints
// (Config.PreMint), re-mints SVIDs as they age or their CA changes, and
// mints the SVIDs of new callers. Before returning it cancels the ctx of
// the Signer calls it made and waits for them.
//
// The issuer serves what it has cached whether Run runs or not, but only
// Run mints: callers that need a new X509-SVID wait for Run to start, and
// fail with an error wrapping endpoint.ErrUnavailable once it has
// returned. Run may be called once; it fails at once when called again or
// after Close.
func (i *Issuer) Run(ctx context.Context) error {
	ctx, done, err := i.life.Begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var wg sync.WaitGroup
	wg.Go(func() {
		// New callers' mints run beside the loop, which may be waiting on
		// the Signer.
		for {
			select {
			case <-i.mintReady:
				i.mu.Lock()
				calls := i.pending
				i.pending = nil
				i.mu.Unlock()
				if len(calls) > 0 {
					wg.Go(func() { i.mintAll(ctx, calls, true) })
				}
			case <-ctx.Done():
				return
			}
		}
	})
	// Subscribed before the Trust is read again, so that no change made
	// since New is missed.
	caUpdates, unsubscribe := i.cfg.Trust.Subscribe()
	i.refreshCA()
	i.loop(ctx, caUpdates) // until ctx is done, which ends the mints too
	unsubscribe()
	wg.Wait()
	i.background.Wait()
	i.stop()
	return nil
}

// stop ends the issuer's minting: callers waiting for the mints still
// queued for Run fail, and so do later callers that need one.
func (i *Issuer) stop() {
	i.mu.Lock()
	i.stopped = true
	calls := i.pending
	i.pending = nil
	i.mu.Unlock()
	i.abandon(calls, errStopped)
}

// Close makes Run return and waits for it; callers then get an error
// wrapping endpoint.ErrUnavailable. Open streams keep their last view: the
// endpoint.Server that serves them ends them when it stops. Close is
// idempotent and safe for concurrent use; it does not close the Trust, the
// Signer, the Registry or the Attestor, which the caller owns.
func (i *Issuer) Close() error {
	i.life.Close()
	i.stop() // no Run will come to mint what callers wait for
	return nil
}

// TrustDomain returns the trust domain the issuer serves: that of the
// Trust's bundle.
func (i *Issuer) TrustDomain() spiffeid.TrustDomain { return i.td }

// Sync applies the registry changes made since the last sync and has Run
// push the views that changed to open streams, without waiting for the
// next poll. A program that writes to a registry that is not a
// registry.Notifier calls it after writing, so that the change reaches
// workloads at once.
func (i *Issuer) Sync(ctx context.Context) error {
	if _, err := i.idx.Sync(ctx); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	i.poke()
	return nil
}

// poke asks Run's loop to refresh every view.
func (i *Issuer) poke() {
	select {
	case i.wake <- struct{}{}:
	default:
	}
}

// loop follows the registry and the Trust, and re-mints SVIDs as they
// age, until ctx is done.
func (i *Issuer) loop(ctx context.Context, caUpdates <-chan struct{}) {
	var notify <-chan struct{}
	if n, ok := i.cfg.Registry.(registry.Notifier); ok {
		var cancel func()
		notify, cancel = n.Subscribe(registry.TopicEntries)
		defer cancel()
		i.syncIndex(ctx) // the writes made before the subscription
	}
	tick := time.NewTicker(i.poll)
	defer tick.Stop()
	// The first refresh runs at once: it pre-mints (Config.PreMint).
	timer := time.NewTimer(0)
	defer timer.Stop()
	steps := clockstep.New(i.now)
	clockTick := time.NewTicker(clockstep.Interval)
	defer clockTick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-notify:
			i.syncIndex(ctx)
		case <-tick.C:
			if i.syncIndex(ctx) == 0 {
				continue // nothing new: the timer still covers re-mints
			}
		case <-clockTick.C:
			// The timer waits for a re-mint by the monotonic clock: after a
			// step of the wall clock (Config.Now), SVIDs may have expired,
			// or come from what is now the future, long before it fires.
			step := steps.Check()
			if step == 0 {
				continue
			}
			i.log.Warn("the clock was stepped; refreshing every SVID", "step", step)
		case <-caUpdates:
			i.refreshCA()
		case <-timer.C:
			i.syncIndex(ctx) // an entry's expiry may be due
		case <-i.wake:
		}
		i.reattest(ctx)
		next := i.refreshAll(ctx)
		if at := i.idx.NextExpiry(); !at.IsZero() && at.Before(next) {
			next = at // the entry leaves every view then
		}
		timer.Reset(max(next.Sub(i.now()), 0))
	}
}

// syncIndex applies the registry's new changes and returns how many.
func (i *Issuer) syncIndex(ctx context.Context) int {
	n, err := i.idx.Sync(ctx)
	if err != nil && ctx.Err() == nil {
		i.log.Warn("reading the registry's changes failed", "err", err)
	}
	return n
}

// refreshCA reads the Trust's bundle, active X.509 CA, tainted CAs and
// tainted keys. The JWT-SVIDs and WIT-SVIDs of keys newly tainted are
// dropped, and the FetchWITSVID subscriptions woken to replace theirs; so
// are the JWT-SVIDs and WIT-SVIDs of keys no longer in a new bundle.
func (i *Issuer) refreshCA() {
	r := authorities.Read(i.cfg.Trust)
	i.mu.Lock()
	changed := i.auth.Apply(r, i.td)
	bundle, taintedJWT, taintedWIT := i.auth.Bundle, i.auth.TaintedJWT, i.auth.TaintedWIT
	i.mu.Unlock()
	// Set before the drops: a token minted meanwhile is checked against
	// the new sets when it is served.
	if changed.TaintedJWT {
		if n := i.jwt.DropTainted(taintedJWT); n > 0 {
			i.log.Info("dropped the cached JWT-SVIDs of tainted keys", "count", n, "kids", slices.Sorted(maps.Keys(taintedJWT)))
		}
	}
	if changed.Bundle {
		// Revoked keys: none of their tokens is served, whose place is
		// better freed now.
		if n, gone := i.jwt.DropUntrusted(bundle.HasJWTAuthority); n > 0 {
			i.log.Info("dropped the cached JWT-SVIDs of keys no longer in the bundle", "count", n, "kids", gone)
		}
	}
	wake := false
	if changed.TaintedWIT {
		if n := i.wit.DropTainted(taintedWIT); n > 0 {
			i.log.Info("dropped the WIT-SVIDs of tainted keys; renewing those of open streams", "count", n, "kids", slices.Sorted(maps.Keys(taintedWIT)))
		}
		wake = true
	}
	if changed.Bundle {
		// Revoked keys: none of their WIT-SVIDs is served. Dropped
		// now, not when next asked for, so that what a program keeps for
		// a restart (WITSVIDs) holds none of them either, and the open
		// streams get new ones at once.
		if n, gone := i.wit.DropUntrusted(bundle.HasWITAuthority); n > 0 {
			i.log.Info("dropped the WIT-SVIDs of keys no longer in the bundle; renewing those of open streams", "count", n, "kids", gone)
			wake = true
		}
	}
	if wake {
		i.witTaints.Notify()
	}
}

// keyTainted reports whether the JWT key (wit false) or WIT key (wit true)
// kid is tainted, as the Trust last said.
func (i *Issuer) keyTainted(wit bool, kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if wit {
		return i.auth.TaintedWIT[kid]
	}
	return i.auth.TaintedJWT[kid]
}

// refreshAll mints a batch of the X509-SVIDs that are due among those of
// the open subscriptions' entries (and, with Config.PreMint, of every
// entry; see claimBatchLocked), recomputes every subscription's view and
// notifies those whose view changed, forgets the SVIDs no one needs any
// more, and returns when the next mint, re-mint or retry falls due: at once
// while SVIDs remain to be minted. It holds i.mu only between Signer calls.
func (i *Issuer) refreshAll(ctx context.Context) time.Time {
	var pre []registry.Entry
	if i.cfg.PreMint {
		pre = selection.Served(i.idx, i.cfg.ParentID, i.cfg.PreMintLimit)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	now := i.now()
	subEntries, wanted := i.wantedLocked(pre)
	streamed, others := i.claimBatchLocked(subEntries, wanted, now)
	if len(others) > 0 {
		i.preMinting = true
	}
	if len(streamed) > 0 {
		i.mu.Unlock()
		i.mintAll(ctx, streamed, false)
		i.mu.Lock()
	}
	if len(others) > 0 {
		// In the background, after the streams' batch, so that the entries
		// of a stream that arrive meanwhile are minted at once, beside it,
		// not after it.
		i.background.Go(func() {
			i.mintAll(ctx, others, false)
			i.mu.Lock()
			i.preMinting = false
			i.mu.Unlock()
			i.poke()
		})
	}
	if len(streamed) > 0 {
		// The registry and the subscriptions may have changed meanwhile.
		now = i.now()
		subEntries, wanted = i.wantedLocked(pre)
	}

	next := now.Add(time.Hour)
	streams := onStream(subEntries)
	// The views served until now may hold SVIDs replaced since: the
	// subscriptions below offer theirs again, or make them anew.
	i.views.Clear()
	for sub, entries := range subEntries {
		v, missing := i.viewLocked(entries, now)
		pending := false
		for _, e := range missing {
			if err := i.backoffLocked(e, now); err == nil {
				pending = true // changed during the mint: minted next round
			} else if ctx.Err() == nil {
				// Its mint failed (logged, counted then): the caller is
				// served its other SVIDs meanwhile.
				i.log.Debug("a caller's view lacks the SVID of an entry that failed to mint",
					"pid", sub.caller.PID, "uid", sub.caller.UID, "entry", e.ID, "err", err)
			}
		}
		if pending || (len(missing) > 0 && len(v.SVIDs) == 0) {
			// Keep the previous view until every SVID is back, or while
			// none is: the caller's entries still apply to it. Retried
			// when backoffLocked says.
			continue
		}
		sub.update(v)
	}
	for id, e := range wanted {
		switch m := i.svids.Get(id); {
		case i.inflight[id] != nil:
			// Whoever mints it wakes this goroutine when done.
		case i.needsMintLocked(*e, now):
			if r, ok := i.retry[id]; ok && r.Revision == e.Revision {
				next = minTime(next, r.At)
			} else if !i.preMinting || streams[id] {
				next = now // appeared or changed during the mint
			}
			// Else the pre-mint under way wakes this goroutine when done.
		default:
			next = minTime(next, m.RefreshAt)
		}
	}
	for id, m := range i.svids.All() {
		if _, ok := wanted[id]; ok {
			continue
		}
		if (i.cfg.PreMint && i.cfg.PreMintLimit == 0) || !now.Before(m.RefreshAt) {
			// Pre-minting every entry, an SVID no entry wants is that of a
			// deleted entry. Otherwise it may be a caller's beyond the
			// pre-mints, minted for its Subscribe and not yet held.
			i.svids.Drop(id)
			continue
		}
		// Unused for now but kept until its refresh time: a stream that
		// opens later may take it from the cache.
		next = minTime(next, m.RefreshAt)
	}
	for id, r := range i.retry {
		// A failure is kept until its retry time even when no stream
		// holds the entry: the caller whose Subscribe waited for that mint
		// skips the entry by it, and a new caller does not retry it early.
		if _, ok := wanted[id]; !ok && !now.Before(r.At) {
			delete(i.retry, id)
		}
	}
	return next
}

// claimBatchLocked claims the mints of at most one batch (Config.MaxBatch)
// of the wanted entries of open streams that need a new X509-SVID, and,
// unless a pre-mint is under way (preMinting), of at most one batch of the
// others (Config.PreMint); each kind by entry ID, so that batches are
// stable from one round to the next. Run's loop mints the streams' batch
// and comes back at once for the rest, after the streams' views have taken
// it; the others' batch is minted beside, in the background, one at a
// time: a stream waiting for its SVID is not kept waiting behind a node's
// thousands of entries, not even behind the batch of them under way when
// its entry arrives, and a caller that arrives meanwhile has its own
// minted beside them (Subscribe claims the mints not under way). i.mu must
// be held.
func (i *Issuer) claimBatchLocked(subEntries map[*subscription][]registry.Entry, wanted map[string]*registry.Entry, now time.Time) (streamed, others []*mintCall) {
	var dueStreamed, dueOthers []*registry.Entry
	var mine map[string]bool
	for id, e := range wanted {
		if !i.needsMintLocked(*e, now) || i.backoffLocked(*e, now) != nil {
			continue
		}
		if mine == nil {
			mine = onStream(subEntries)
		}
		if mine[id] {
			dueStreamed = append(dueStreamed, e)
		} else if !i.preMinting {
			dueOthers = append(dueOthers, e)
		}
	}
	claim := func(due []*registry.Entry) []*mintCall {
		slices.SortFunc(due, func(a, b *registry.Entry) int { return strings.Compare(a.ID, b.ID) })
		calls := make([]*mintCall, 0, min(len(due), i.maxBatch))
		for _, e := range due[:min(len(due), i.maxBatch)] {
			calls = append(calls, i.claimLocked(*e))
		}
		return calls
	}
	return claim(dueStreamed), claim(dueOthers)
}

// onStream returns the IDs of the entries of the subscriptions.
func onStream(subEntries map[*subscription][]registry.Entry) map[string]bool {
	ids := make(map[string]bool)
	for _, entries := range subEntries {
		for _, e := range entries {
			ids[e.ID] = true
		}
	}
	return ids
}

// wantedLocked returns the entries of each open subscription, and every
// entry that needs an X509-SVID, by entry ID: those of the subscriptions,
// and pre. Where both hold an entry, the index's revision (the
// subscriptions') wins. The entries of wanted point into pre and into
// subEntries, which must not change meanwhile: with Config.PreMint, a node
// agent's ten thousand entries are not copied again. i.mu must be held.
func (i *Issuer) wantedLocked(pre []registry.Entry) (map[*subscription][]registry.Entry, map[string]*registry.Entry) {
	subEntries := make(map[*subscription][]registry.Entry, len(i.subs))
	wanted := make(map[string]*registry.Entry, len(pre))
	for k := range pre {
		wanted[pre[k].ID] = &pre[k]
	}
	for sub := range i.subs {
		entries := i.entries(sub.attested.Selectors)
		subEntries[sub] = entries
		for k := range entries {
			wanted[entries[k].ID] = &entries[k]
		}
	}
	return subEntries, wanted
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
