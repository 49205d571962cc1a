package workloadapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

const (
	// jwtRefreshFraction is the share of a token's lifetime after which
	// JWTSource fetches a new one instead of reusing it.
	jwtRefreshFraction = 0.8
	// jwtRefreshMargin is the least time before expiry at which JWTSource
	// fetches a new token.
	jwtRefreshMargin = 30 * time.Second
	// maxJWTCacheEntries bounds the JWT-SVID cache; callers choose the keys.
	maxJWTCacheEntries = 256
)

// JWTSource is a source of JWT-SVID and JWT bundles maintained via the
// Workload API.
//
// The JWT bundles come from a watch and are read from memory. JWT-SVIDs are
// fetched on demand and, unlike go-spiffe, cached per subject and audience
// set: a token is reused until 80% of its lifetime has passed or until 30 s
// before it expires, whichever comes first (WAPI rule 12 lets servers do the
// same). WithoutJWTSVIDCache turns the cache off.
type JWTSource struct {
	base    sourceBase
	picker  func([]*jwtsvid.SVID) *jwtsvid.SVID
	noCache bool
	now     func() time.Time

	bundles   atomic.Pointer[jwtbundle.Set]
	ready     chan struct{}
	readyOnce sync.Once

	cacheMu sync.Mutex // guards cache; never held across a fetch
	cache   map[jwtCacheKey]jwtCacheEntry
}

type jwtCacheKey struct {
	subject  string
	audience string // sorted, deduplicated audiences joined by NUL
}

type jwtCacheEntry struct {
	svids     []*jwtsvid.SVID
	refreshAt time.Time
}

// NewJWTSource creates a new JWTSource. It blocks until the initial update
// has been received from the Workload API, unless WithoutWaitingForFirstUpdate
// is given. The source should be closed when no longer in use to free
// underlying resources. On error, everything it started is stopped again.
func NewJWTSource(ctx context.Context, options ...JWTSourceOption) (_ *JWTSource, err error) {
	var cfg jwtSourceConfig
	for _, opt := range options {
		opt.configureJWTSource(&cfg)
	}
	s := &JWTSource{
		picker:  cfg.picker,
		noCache: cfg.noCache,
		now:     time.Now,
		ready:   make(chan struct{}),
		cache:   make(map[jwtCacheKey]jwtCacheEntry),
	}
	watch := func(ctx context.Context) error {
		return s.base.client.WatchJWTBundles(ctx, (*jwtSourceWatcher)(s))
	}
	if err := s.base.start(ctx, cfg.sourceConfig, []func(context.Context) error{watch}, []chan struct{}{s.ready}); err != nil {
		return nil, s.base.closeOnError(err)
	}
	return s, nil
}

// Close closes the source, dropping the connection to the Workload API.
// Other source methods will return an error matching ErrSourceClosed after
// Close has been called. The underlying Workload API client will also be
// closed if it is owned by the JWTSource (i.e. not provided via the
// WithClient option). Close waits for the watch goroutine to exit, is
// idempotent and safe for concurrent use.
func (s *JWTSource) Close() error {
	return s.base.close()
}

// FetchJWTSVID fetches a JWT-SVID from the source with the given parameters.
// It implements the jwtsvid.Source interface. The SVID is the one the
// default-SVID picker chooses, else the first one returned. It may come from
// the cache (see JWTSource); the returned SVID is shared and must not be
// modified.
func (s *JWTSource) FetchJWTSVID(ctx context.Context, params jwtsvid.Params) (*jwtsvid.SVID, error) {
	svids, err := s.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return nil, err
	}
	if s.picker == nil {
		return svids[0], nil
	}
	svid := s.picker(svids)
	if svid == nil {
		return nil, errors.New("workloadapi: missing JWT-SVID")
	}
	return svid, nil
}

// FetchJWTSVIDs fetches all JWT-SVIDs from the source with the given
// parameters. The result may come from the cache (see JWTSource); the
// returned slice is the caller's, the SVIDs in it are shared and must not be
// modified.
func (s *JWTSource) FetchJWTSVIDs(ctx context.Context, params jwtsvid.Params) ([]*jwtsvid.SVID, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	key := cacheKeyOf(params)
	if !s.noCache {
		if svids, ok := s.cached(key); ok {
			return svids, nil
		}
	}
	svids, err := s.base.client.FetchJWTSVIDs(ctx, params)
	if err != nil {
		return nil, err
	}
	if !s.noCache {
		s.store(key, svids)
	}
	return slices.Clone(svids), nil
}

// GetJWTBundleForTrustDomain returns the JWT bundle for the given trust
// domain. It implements the jwtbundle.Source interface.
func (s *JWTSource) GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if err := s.base.checkClosed(); err != nil {
		return nil, err
	}
	set := s.bundles.Load()
	if set == nil {
		return nil, s.base.notReady("JWT bundle")
	}
	b, err := set.GetJWTBundleForTrustDomain(trustDomain)
	if err != nil {
		return nil, fmt.Errorf("workloadapi: %w", err)
	}
	return b, nil
}

// WaitUntilUpdated waits until the source is updated or the context is done,
// in which case ctx.Err() is returned.
func (s *JWTSource) WaitUntilUpdated(ctx context.Context) error {
	return s.base.waitUntilUpdated(ctx)
}

// Updated returns a channel that is sent on whenever the source is updated.
// The channel has a capacity of one: updates that arrive while a
// notification is pending are coalesced into it.
func (s *JWTSource) Updated() <-chan struct{} {
	return s.base.updated
}

func cacheKeyOf(params jwtsvid.Params) jwtCacheKey {
	audience := audienceOf(params)
	slices.Sort(audience)
	audience = slices.Compact(audience)
	key := jwtCacheKey{audience: strings.Join(audience, "\x00")}
	if !params.Subject.IsZero() {
		key.subject = params.Subject.String()
	}
	return key
}

func (s *JWTSource) cached(key jwtCacheKey) ([]*jwtsvid.SVID, bool) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	e, ok := s.cache[key]
	if !ok || !s.now().Before(e.refreshAt) {
		return nil, false
	}
	return slices.Clone(e.svids), true
}

// store caches svids until the earliest refresh time among them.
func (s *JWTSource) store(key jwtCacheKey, svids []*jwtsvid.SVID) {
	now := s.now()
	var refreshAt time.Time
	for i, svid := range svids {
		t := refreshTime(svid, now)
		if i == 0 || t.Before(refreshAt) {
			refreshAt = t
		}
	}
	if !now.Before(refreshAt) {
		return // too close to expiry to be worth keeping
	}
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	if len(s.cache) >= maxJWTCacheEntries {
		for k, e := range s.cache {
			if !now.Before(e.refreshAt) {
				delete(s.cache, k)
			}
		}
		if len(s.cache) >= maxJWTCacheEntries {
			clear(s.cache) // many live keys: start over rather than grow
		}
	}
	s.cache[key] = jwtCacheEntry{svids: slices.Clone(svids), refreshAt: refreshAt}
}

// refreshTime is when a token fetched at now should be replaced: after 80%
// of its lifetime (counted from iat when present, else from now) or 30 s
// before exp, whichever is earlier.
func refreshTime(svid *jwtsvid.SVID, now time.Time) time.Time {
	issued := now
	if iat, ok := svid.Claims["iat"].(float64); ok {
		if t := time.Unix(int64(iat), 0); t.Before(now) {
			issued = t
		}
	}
	lifetime := svid.Expiry.Sub(issued)
	byFraction := issued.Add(time.Duration(float64(lifetime) * jwtRefreshFraction))
	byMargin := svid.Expiry.Add(-jwtRefreshMargin)
	if byMargin.Before(byFraction) {
		return byMargin
	}
	return byFraction
}

// jwtSourceWatcher is the JWTBundleWatcher view of a JWTSource.
type jwtSourceWatcher JWTSource

func (w *jwtSourceWatcher) OnJWTBundlesUpdate(set *jwtbundle.Set) {
	w.bundles.Store(set)
	w.base.triggerUpdated()
	markReady(&w.readyOnce, w.ready)
}

func (w *jwtSourceWatcher) OnJWTBundlesWatchError(err error) {
	w.base.setErr(err)
}
