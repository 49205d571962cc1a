package witmint

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/issuer/internal/tokencache"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// KeyAlgorithm is the algorithm of the keys generated for WIT-SVIDs: ECDSA
// P-256, as for X509-SVIDs.
const KeyAlgorithm = string(jose.ES256)

// MaxCached bounds the cache, one WIT-SVID per entry. A node agent serving
// more entries to FetchWITSVID callers at once re-mints.
const MaxCached = 4096

// SVIDType is the type an Observer is told of the WIT-SVIDs signed.
const SVIDType = "wit"

// An Observer is told of every call to the signer (issuer.Observer).
type Observer interface {
	Signed(svidType string, n, failed int, d time.Duration)
}

// Config configures New.
type Config struct {
	// Sign has a WIT-SVID signed for entry e, binding key.Public(), whose
	// proofs of possession use KeyAlgorithm. Required.
	Sign func(ctx context.Context, e registry.Entry, key crypto.Signer) (string, error)
	// Fail returns the error a caller is given when e's WIT-SVID could
	// not be had for err. Required.
	Fail func(e registry.Entry, err error) error
	// Trusted reports whether the bundle holds the key kid, and the key is
	// not tainted; Tainted, whether it is tainted. Required.
	Trusted, Tainted func(kid string) bool
	// Now is the issuer's clock. Required.
	Now func() time.Time
	// Observer, when not nil, is told of every call to Sign.
	Observer Observer
	// Log receives the failures. Required.
	Log *slog.Logger
}

// WIT is the WIT-SVID of one entry, with its private key as the Workload
// API sends it.
type WIT struct {
	// Revision is that of the entry it was minted for; Kid that of the
	// WIT key that signed it.
	Revision int64
	Kid      string
	// Token is the WIT-SVID; Key its private key, a JWK (JSON).
	Token, Key string
	// RefreshAt is half its life; Expiry its "exp".
	RefreshAt, Expiry time.Time
	// MintedAt is when it came, by the issuer's clock.
	MintedAt time.Time
}

// Expires returns when the token expires (tokencache.Token).
func (w WIT) Expires() time.Time { return w.Expiry }

// KeyID returns the ID of the key that signed the token (tokencache.Token).
func (w WIT) KeyID() string { return w.Kid }

// Minter has WIT-SVIDs signed and keeps them, by entry ID. It is safe for
// concurrent use.
type Minter struct {
	cfg     Config
	cache   tokencache.Cache[WIT]
	version atomic.Uint64
}

// New returns a Minter that holds no WIT-SVID.
func New(cfg Config) *Minter { return &Minter{cfg: cfg} }

// For returns the WIT-SVID of entry e: the one held until half its life,
// else a new one, for a new key. While the signer fails, the one held is
// served until it expires. A WIT-SVID whose signing key has left the trust
// domain's bundle (revoked) or is tainted is never served again. An error
// wrapping endpoint.ErrUnimplemented says no WIT-SVID can be had at all;
// another is Config.Fail's.
func (m *Minter) For(ctx context.Context, e registry.Entry) (WIT, error) {
	now := m.cfg.Now()
	cached, ok := m.cache.Get(e.ID)
	ok = ok && cached.Revision == e.Revision && now.Before(cached.Expiry) && m.cfg.Trusted(cached.Kid)
	if ok && now.Before(cached.RefreshAt) {
		return cached, nil
	}
	w, err := m.mint(ctx, e, now)
	if err != nil {
		if ok && !errors.Is(err, endpoint.ErrUnimplemented) {
			m.cfg.Log.Warn("minting a WIT-SVID failed; serving the cached one", "entry", e.ID,
				"expiry", cached.Expiry, "err", err)
			return cached, nil
		}
		return WIT{}, err
	}
	m.cache.Put(e.ID, w, now, MaxCached)
	m.version.Add(1)
	return w, nil
}

func (m *Minter) mint(ctx context.Context, e registry.Entry, now time.Time) (WIT, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return WIT{}, fmt.Errorf("issuer: generating a WIT-SVID key: %w", err)
	}
	var start time.Time
	if m.cfg.Observer != nil {
		start = time.Now()
	}
	token, err := m.cfg.Sign(ctx, e, key)
	var expiry time.Time
	var kid string
	if err == nil {
		expiry, kid, err = svidcheck.WIT(token, e.SPIFFEID, key.Public())
		switch {
		case err != nil:
		case !now.Before(expiry):
			err = fmt.Errorf("the signer returned a WIT-SVID that expired at %v", expiry)
		case m.cfg.Tainted(kid):
			err = fmt.Errorf("the signer returned a WIT-SVID signed by the tainted key %q", kid)
		}
	}
	if o := m.cfg.Observer; o != nil {
		failed := 0
		if err != nil {
			failed = 1
		}
		o.Signed(SVIDType, 1, failed, time.Since(start))
	}
	if err != nil {
		if errors.Is(err, endpoint.ErrUnimplemented) {
			return WIT{}, err
		}
		return WIT{}, m.cfg.Fail(e, err)
	}
	jwk, err := jose.JSONWebKey{Key: key, Algorithm: KeyAlgorithm}.MarshalJSON()
	if err != nil {
		return WIT{}, fmt.Errorf("issuer: encoding a WIT-SVID key: %w", err)
	}
	return WIT{
		Revision: e.Revision, Kid: kid, Token: token, Key: string(jwk),
		RefreshAt: now.Add(expiry.Sub(now) / 2), Expiry: expiry, MintedAt: now.Round(0),
	}, nil
}

// Version returns a number that changes whenever the WIT-SVIDs held do:
// one minted or restored, those of a key tainted or gone dropped.
func (m *Minter) Version() uint64 { return m.version.Load() }

// Each calls f with each WIT-SVID held and its entry's ID, in no order,
// holding the cache's lock: f must not use the Minter.
func (m *Minter) Each(f func(id string, w WIT)) { m.cache.Each(f) }

// Restore holds w, restored from a program's store, as the WIT-SVID of
// entry id, unless one is held already; it reports whether it took w.
// It does not count the change: see Restored.
func (m *Minter) Restore(id string, w WIT, now time.Time) bool {
	if _, ok := m.cache.Get(id); ok {
		return false
	}
	m.cache.Put(id, w, now, MaxCached)
	return true
}

// Restored counts the change of the WIT-SVIDs Restore took.
func (m *Minter) Restored() { m.version.Add(1) }

// DropTainted drops the WIT-SVIDs of the keys of tainted and returns how
// many; dropping one counts as a change.
func (m *Minter) DropTainted(tainted map[string]bool) int {
	n := m.cache.DeleteFunc(func(_ string, w WIT) bool { return tainted[w.Kid] })
	if n > 0 {
		m.version.Add(1)
	}
	return n
}

// DropUntrusted drops the WIT-SVIDs of the keys keep refuses (those no
// longer in the bundle), and returns how many and the keys' IDs, sorted;
// dropping one counts as a change.
func (m *Minter) DropUntrusted(keep func(kid string) bool) (int, []string) {
	n, gone := m.cache.DropKeys(keep)
	if n > 0 {
		m.version.Add(1)
	}
	return n, gone
}
