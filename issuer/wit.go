package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// A WITSigner is a Signer that can also have WIT-SVIDs signed (an
// incubating standard). The issuer serves FetchWITSVID only with one; a
// LocalSigner is one, and so is a node agent's.
type WITSigner interface {
	Signer

	// SignWITSVID returns a WIT-SVID (a compact JWS) for req, binding
	// req.Key.Public() in its "cnf" claim. An error wrapping
	// endpoint.ErrUnimplemented says WIT-SVIDs cannot be had at all (the
	// CA keeps no WIT key): the Workload API then answers Unimplemented.
	SignWITSVID(ctx context.Context, req WITSVIDRequest) (string, error)
}

// WITSVIDRequest asks a WITSigner for one WIT-SVID.
type WITSVIDRequest struct {
	// Entry is the registration entry the WIT-SVID is for: its SPIFFE ID is
	// the token's subject. The WITSigner must not modify it.
	Entry registry.Entry

	// Key is the WIT-SVID's private key, generated in memory by the issuer
	// for this request. The WITSigner binds Key.Public(), and must not
	// keep Key.
	Key crypto.Signer

	// KeyAlgorithm is the JWS algorithm of the proofs of possession made
	// with Key ("cnf.jwk.alg").
	KeyAlgorithm string

	// TTL is Config.WITSVIDTTL. Zero means the WITSigner's default; it may
	// shorten it.
	TTL time.Duration
}

var _ WITSigner = (*LocalSigner)(nil)

// SignWITSVID signs with the WIT key active at the call, when the
// authority is a ca.WITIssuer that has one; otherwise it fails with an
// error wrapping endpoint.ErrUnimplemented.
func (s *LocalSigner) SignWITSVID(ctx context.Context, req WITSVIDRequest) (string, error) {
	wi, ok := s.a.(ca.WITIssuer)
	if !ok {
		return "", fmt.Errorf("issuer: %w: the CA signs no WIT-SVIDs", endpoint.ErrUnimplemented)
	}
	a := wi.WITAuthority()
	if a == nil {
		return "", fmt.Errorf("issuer: %w: the CA has no WIT key", endpoint.ErrUnimplemented)
	}
	return a.SignWITSVID(ctx, ca.WITSVIDParams{
		ID: req.Entry.SPIFFEID, PublicKey: req.Key.Public(), KeyAlgorithm: req.KeyAlgorithm, TTL: req.TTL,
	})
}

// witKeyAlgorithm is the algorithm of the keys the issuer generates for
// WIT-SVIDs: ECDSA P-256, as for X509-SVIDs.
const witKeyAlgorithm = string(jose.ES256)

// maxCachedWITs bounds the WIT-SVID cache, one per entry. A node agent
// serving more entries to FetchWITSVID callers at once re-mints.
const maxCachedWITs = 4096

// witRetryMin and witRetryMax bound the wait before a failed WIT-SVID is
// asked for again while a caller watches.
const (
	witRetryMin = time.Second
	witRetryMax = 30 * time.Second
)

// cachedWIT is the WIT-SVID of one entry, with its private key as the
// Workload API sends it.
type cachedWIT struct {
	revision  int64  // of the entry it was minted for
	kid       string // of the WIT key that signed it
	token     string
	key       string    // private key, JWK JSON
	refreshAt time.Time // half its life
	expiry    time.Time
	mintedAt  time.Time // by the issuer's clock
}

// Expires returns when the token expires (tokencache.Token).
func (w cachedWIT) Expires() time.Time { return w.expiry }

// KeyID returns the ID of the key that signed the token (tokencache.Token).
func (w cachedWIT) KeyID() string { return w.kid }

// witFor returns the WIT-SVID of entry e: the cached one until half its
// life, else a new one, for a new key. While the signer fails, the cached
// one is served until it expires. A WIT-SVID whose signing key has left
// the trust domain's bundle (revoked) or is tainted is never served again.
func (i *Issuer) witFor(ctx context.Context, s WITSigner, e registry.Entry) (cachedWIT, error) {
	now := i.now()
	cached, ok := i.wit.Get(e.ID)
	ok = ok && cached.revision == e.Revision && now.Before(cached.expiry) && i.trustsWITKey(cached.kid)
	if ok && now.Before(cached.refreshAt) {
		return cached, nil
	}
	w, err := i.mintWIT(ctx, s, e, now)
	if err != nil {
		if ok && !errors.Is(err, endpoint.ErrUnimplemented) {
			i.log.Warn("minting a WIT-SVID failed; serving the cached one", "entry", e.ID,
				"expiry", cached.expiry, "err", err)
			return cached, nil
		}
		return cachedWIT{}, err
	}
	i.wit.Put(e.ID, w, now, maxCachedWITs)
	i.witVersion.Add(1)
	return w, nil
}

// trustsWITKey reports whether the trust domain's bundle holds the WIT key
// kid, and the key is not tainted.
func (i *Issuer) trustsWITKey(kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.bundle.HasWITAuthority(kid) && !i.taintedWIT[kid]
}

func (i *Issuer) mintWIT(ctx context.Context, s WITSigner, e registry.Entry, now time.Time) (cachedWIT, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cachedWIT{}, fmt.Errorf("issuer: generating a WIT-SVID key: %w", err)
	}
	var start time.Time
	if i.cfg.Observer != nil {
		start = time.Now()
	}
	token, err := s.SignWITSVID(ctx, WITSVIDRequest{Entry: e, Key: key, KeyAlgorithm: witKeyAlgorithm, TTL: i.cfg.WITSVIDTTL})
	var expiry time.Time
	var kid string
	if err == nil {
		expiry, kid, err = svidcheck.WIT(token, e.SPIFFEID, key.Public())
		switch {
		case err != nil:
		case !now.Before(expiry):
			err = fmt.Errorf("the signer returned a WIT-SVID that expired at %v", expiry)
		case i.keyTainted(true, kid):
			err = fmt.Errorf("the signer returned a WIT-SVID signed by the tainted key %q", kid)
		}
	}
	if o := i.cfg.Observer; o != nil {
		failed := 0
		if err != nil {
			failed = 1
		}
		o.Signed(svidWIT, 1, failed, time.Since(start))
	}
	if err != nil {
		if errors.Is(err, endpoint.ErrUnimplemented) {
			return cachedWIT{}, err
		}
		return cachedWIT{}, fmt.Errorf("issuer: minting a WIT-SVID for entry %s: %w", e.ID, retryable(err))
	}
	jwk, err := jose.JSONWebKey{Key: key, Algorithm: witKeyAlgorithm}.MarshalJSON()
	if err != nil {
		return cachedWIT{}, fmt.Errorf("issuer: encoding a WIT-SVID key: %w", err)
	}
	return cachedWIT{
		revision: e.Revision, kid: kid, token: token, key: string(jwk),
		refreshAt: now.Add(expiry.Sub(now) / 2), expiry: expiry, mintedAt: now.Round(0),
	}, nil
}

// SubscribeWIT attests caller and returns its live view for FetchWITSVID:
// what Subscribe returns, with a WIT-SVID for each entry that applies to
// it. It implements endpoint.WITHandler.
//
// WIT-SVIDs are minted on demand, when a caller first asks, each for a key
// the issuer generates (ECDSA P-256, ES256), and cached per entry: shared
// by the callers the entry applies to, re-minted at half their life, for
// a new revision of the entry, and while the subscription lives; those of
// a key the Trust names as tainted are replaced at once. An entry
// whose WIT-SVID cannot be signed costs the caller only that one; it is
// asked for again after a backoff (1 s, doubling to 30 s) while a cached
// one is served until it expires. A Signer that is no WITSigner, or one
// whose CA keeps no WIT key, makes it fail with an error wrapping
// endpoint.ErrUnimplemented; every other error is Subscribe's.
//
// The subscription runs a goroutine that ends with Close.
func (i *Issuer) SubscribeWIT(ctx context.Context, caller endpoint.Caller) (endpoint.Subscription, error) {
	s, ok := i.signer.(WITSigner)
	if !ok {
		return nil, fmt.Errorf("issuer: %w: the signer cannot have WIT-SVIDs signed", endpoint.ErrUnimplemented)
	}
	sub, err := i.Subscribe(ctx, caller)
	if err != nil {
		return nil, err
	}
	w := &witSubscription{iss: i, signer: s, base: sub.(*subscription), changed: make(chan struct{}, 1), done: make(chan struct{})}
	// Subscribed before the first refresh, so that no taint known after
	// it is missed.
	w.taints, w.untaint = i.witTaints.Subscribe()
	next, err := w.refresh(ctx)
	if err != nil {
		w.untaint()
		sub.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.run(runCtx, next)
	return w, nil
}

// witSubscription is one FetchWITSVID caller's view: its issuer
// subscription, and the WIT-SVIDs of its entries, which its goroutine
// keeps fresh.
type witSubscription struct {
	iss     *Issuer
	signer  WITSigner
	base    *subscription
	snap    atomic.Pointer[endpoint.Snapshot]
	changed chan struct{} // capacity 1
	taints  <-chan struct{}
	untaint func() // ends the subscription to taints
	cancel  context.CancelFunc
	done    chan struct{} // closed when run returns
	once    sync.Once

	// Owned by refresh: what the published snapshot was made of.
	published bool
	lastBase  *endpoint.Snapshot
	lastWITs  []endpoint.WITSVID
}

// Snapshot implements endpoint.Subscription.
func (w *witSubscription) Snapshot() *endpoint.Snapshot { return w.snap.Load() }

// Changed implements endpoint.Subscription.
func (w *witSubscription) Changed() <-chan struct{} { return w.changed }

// Close stops the goroutine, waits for it, and closes the issuer
// subscription.
func (w *witSubscription) Close() {
	w.once.Do(func() {
		w.cancel()
		<-w.done
		w.untaint()
		w.base.Close()
	})
}

// run refreshes the view when the issuer's view changes, when a WIT key
// is tainted, when a WIT-SVID is due, and after a failure, until ctx is
// done or the issuer closes.
func (w *witSubscription) run(ctx context.Context, next time.Time) {
	defer close(w.done)
	retry := witRetryMin
	for {
		timer := time.NewTimer(max(next.Sub(w.iss.now()), 0))
		select {
		case <-w.base.Changed():
		case <-w.taints:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		case <-w.iss.life.Closed():
			timer.Stop()
			return
		}
		timer.Stop()
		n, err := w.refresh(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			// Nothing could be minted: the last view stays, and the
			// next try comes after a backoff.
			w.iss.log.Warn("WIT-SVIDs could not be renewed; retrying", "retry_in", retry, "err", err)
			next, retry = w.iss.now().Add(retry), min(2*retry, witRetryMax)
		default:
			next, retry = n, witRetryMin
		}
	}
}

// refresh builds the view from the issuer's and the WIT-SVIDs of the
// caller's entries, minting those due, and publishes it if it changed. It
// returns when to refresh again: when the first WIT-SVID is due, or
// after witRetryMin when one failed. It fails when the caller has
// identities but no WIT-SVID could be had.
func (w *witSubscription) refresh(ctx context.Context) (time.Time, error) {
	i := w.iss
	base := w.base.Snapshot()
	if base == nil {
		// No identity any more: the server ends the stream.
		w.publish(nil, nil)
		return i.now().Add(witRetryMax), nil
	}
	i.mu.Lock()
	sels := w.base.attested.selectors
	i.mu.Unlock()
	var wits []endpoint.WITSVID
	var next time.Time
	var failed error
	for _, e := range i.entries(sels) {
		c, err := i.witFor(ctx, w.signer, e)
		if err != nil {
			if errors.Is(err, endpoint.ErrUnimplemented) || ctx.Err() != nil {
				return time.Time{}, err
			}
			// It costs the caller only this WIT-SVID.
			i.log.Warn("minting a WIT-SVID failed; the caller gets its other ones", "entry", e.ID,
				"spiffe_id", e.SPIFFEID.String(), "err", err)
			failed = err
			continue
		}
		wits = append(wits, endpoint.WITSVID{ID: e.SPIFFEID, Token: c.token, Key: c.key, Hint: e.Hint})
		if next.IsZero() || c.refreshAt.Before(next) {
			next = c.refreshAt
		}
	}
	if len(wits) == 0 {
		if failed != nil {
			return time.Time{}, failed
		}
		w.publish(nil, nil) // no entry applies any more
		return i.now().Add(witRetryMax), nil
	}
	if failed != nil {
		next = i.now().Add(witRetryMin)
	}
	w.publish(base, wits)
	return next, nil
}

// publish stores the view made of base and wits, unless it is the one
// published last, and signals the change.
func (w *witSubscription) publish(base *endpoint.Snapshot, wits []endpoint.WITSVID) {
	if w.published && base == w.lastBase && equalWITs(wits, w.lastWITs) {
		return
	}
	w.published, w.lastBase, w.lastWITs = true, base, wits
	if base == nil {
		w.snap.Store(nil)
	} else {
		w.snap.Store(&endpoint.Snapshot{
			TrustDomain: base.TrustDomain, X509SVIDs: base.X509SVIDs, RawX509SVIDs: base.RawX509SVIDs,
			Bundles: base.Bundles, WITSVIDs: wits,
		})
	}
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func equalWITs(a, b []endpoint.WITSVID) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}
