package issuer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/issuer/internal/witstream"
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
	return i.auth.TrustsWITKey(kid)
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
		return cachedWIT{}, fmt.Errorf("issuer: minting a WIT-SVID for entry %s: %w", e.ID, retry.Retryable(err))
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
	base := sub.(*subscription)
	// Subscribed before the first refresh, so that no taint known after
	// it is missed.
	taints, untaint := i.witTaints.Subscribe()
	return witstream.Start(ctx, witstream.Config{
		Base:    base,
		Collect: func(ctx context.Context) ([]endpoint.WITSVID, time.Time, error) { return i.collectWITs(ctx, s, base) },
		Taints:  taints,
		Untaint: untaint,
		Closed:  i.life.Closed(),
		Now:     i.now,
		Log:     i.log,
	})
}

// collectWITs returns the WIT-SVIDs of the entries of sub's caller,
// minting those due, and when the first is due again (see
// witstream.Collect).
func (i *Issuer) collectWITs(ctx context.Context, s WITSigner, sub *subscription) ([]endpoint.WITSVID, time.Time, error) {
	i.mu.Lock()
	sels := sub.attested.Selectors
	i.mu.Unlock()
	var wits []endpoint.WITSVID
	var next time.Time
	var failed error
	for _, e := range i.entries(sels) {
		c, err := i.witFor(ctx, s, e)
		if err != nil {
			if errors.Is(err, endpoint.ErrUnimplemented) || ctx.Err() != nil {
				return nil, time.Time{}, err
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
	return wits, next, failed
}
