package jwtmint

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/issuer/internal/tokencache"
	"github.com/spiffekit/spiffekit/registry"
)

// MaxCached bounds the cache: callers choose the audiences, so they could
// otherwise make it grow without end.
const MaxCached = 4096

// SVIDType is the type an Observer is told of the JWT-SVIDs signed.
const SVIDType = "jwt"

// An Observer is told of every call to the signer (issuer.Observer).
type Observer interface {
	Signed(svidType string, n, failed int, d time.Duration)
}

// Config configures New.
type Config struct {
	// Sign signs a JWT-SVID for entry e and audience, of lifetime ttl
	// (zero: the signer's default). Required.
	Sign func(ctx context.Context, e registry.Entry, audience []string, ttl time.Duration) (string, error)
	// ActiveKeyID returns the ID of the key that signs now. Nil when the
	// signer does not say (a remote one): a token is then reused whatever
	// key signed it.
	ActiveKeyID func() string
	// Trusted reports whether the bundle holds the key kid, and the key is
	// not tainted; Tainted, whether it is tainted. Required.
	Trusted, Tainted func(kid string) bool
	// TTL is the lifetime of the entries without their own; zero means
	// the signer's default.
	TTL time.Duration
	// Now is the issuer's clock. Required.
	Now func() time.Time
	// Observer, when not nil, is told of every call to Sign.
	Observer Observer
	// Log receives the failures. Required.
	Log *slog.Logger
}

// Minter has JWT-SVIDs signed and caches them. It is safe for concurrent
// use.
type Minter struct {
	cfg   Config
	cache tokencache.Cache[token]
}

// token is a minted JWT-SVID, kept for reuse until half its life.
type token struct {
	token     string
	kid       string    // of the key that signed it
	refreshAt time.Time // half its life
	staleAt   time.Time // three quarters of its life
	expiry    time.Time
}

// Expires returns when the token expires (tokencache.Token).
func (t token) Expires() time.Time { return t.expiry }

// KeyID returns the ID of the key that signed the token (tokencache.Token).
func (t token) KeyID() string { return t.kid }

// New returns a Minter with an empty cache.
func New(cfg Config) *Minter { return &Minter{cfg: cfg} }

// For returns a JWT-SVID for entry e and audience, from the cache or
// freshly signed. A token signed by a tainted key is never served, fresh
// or cached, nor is a cached one whose key left the bundle; while the
// signer fails, a cached one is served until three quarters of its life;
// else For returns the failure as it is, for the caller to wrap.
func (m *Minter) For(ctx context.Context, e registry.Entry, audience []string) (string, error) {
	// The key names everything the token depends on; the audience keeps its
	// order, since it is copied into "aud" as given. The key ID is empty when
	// the Signer does not say which key is active (a remote Signer).
	var kid string
	if m.cfg.ActiveKeyID != nil {
		kid = m.cfg.ActiveKeyID()
	}
	key := e.ID + "\x00" + strconv.FormatInt(e.Revision, 10) + "\x00" + kid +
		"\x00" + strings.Join(audience, "\x00")
	now := m.cfg.Now()
	cached, ok := m.cache.Get(key)
	// The token of a key tainted, or gone from the bundle (revoked), is
	// not served even while the Signer fails.
	ok = ok && m.cfg.Trusted(cached.kid)
	if ok && now.Before(cached.refreshAt) {
		return cached.token, nil
	}
	ttl := e.JWTSVIDTTL
	if ttl == 0 {
		ttl = m.cfg.TTL
	}
	var start time.Time
	if m.cfg.Observer != nil {
		start = time.Now()
	}
	signed, err := m.cfg.Sign(ctx, e, audience, ttl)
	var took time.Duration
	if m.cfg.Observer != nil {
		took = time.Since(start)
	}
	var expiry time.Time
	var signedBy string
	if err == nil {
		// The key's expiry may have cut the lifetime short: read the real one.
		expiry, signedBy, err = svidcheck.JWTExpiry(signed)
		switch {
		case err != nil:
		case !now.Before(expiry):
			err = fmt.Errorf("the signer returned a token that expired at %v", expiry)
		case m.cfg.Tainted(signedBy):
			err = fmt.Errorf("the signer returned a token signed by the tainted key %q", signedBy)
		}
	}
	if o := m.cfg.Observer; o != nil {
		failed := 0
		if err != nil {
			failed = 1
		}
		o.Signed(SVIDType, 1, failed, took)
	}
	if err != nil {
		if ok && now.Before(cached.staleAt) {
			// Still comfortably far from expiry: better than no token.
			m.cfg.Log.Warn("minting a JWT-SVID failed; serving the cached one", "entry", e.ID,
				"expiry", cached.expiry, "err", err)
			return cached.token, nil
		}
		return "", err
	}
	life := expiry.Sub(now)
	m.cache.Put(key, token{
		token:     signed,
		kid:       signedBy,
		refreshAt: now.Add(life / 2),
		staleAt:   now.Add(life * 3 / 4),
		expiry:    expiry,
	}, now, MaxCached)
	return signed, nil
}

// DropTainted drops the cached tokens of the keys of tainted and returns
// how many.
func (m *Minter) DropTainted(tainted map[string]bool) int {
	return m.cache.DeleteFunc(func(_ string, t token) bool { return tainted[t.kid] })
}

// DropUntrusted drops the cached tokens of the keys keep refuses (those no
// longer in the bundle), whose place is better freed now, and returns how
// many and the keys' IDs, sorted.
func (m *Minter) DropUntrusted(keep func(kid string) bool) (int, []string) {
	return m.cache.DropKeys(keep)
}
