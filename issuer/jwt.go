package issuer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// maxCachedJWTs bounds the JWT-SVID cache: callers choose the audiences, so
// they could otherwise make it grow without end.
const maxCachedJWTs = 4096

// cachedJWT is a minted JWT-SVID, kept for reuse until half its life.
type cachedJWT struct {
	token     string
	kid       string    // of the key that signed it
	refreshAt time.Time // half its life
	staleAt   time.Time // three quarters of its life
	expiry    time.Time
}

// Expires returns when the token expires (tokencache.Token).
func (t cachedJWT) Expires() time.Time { return t.expiry }

// KeyID returns the ID of the key that signed the token (tokencache.Token).
func (t cachedJWT) KeyID() string { return t.kid }

// FetchJWTSVIDs attests caller and returns a JWT-SVID for the given
// audience for each entry that applies to it (or only for params.ID). It
// implements endpoint.Handler.
//
// A token is reused for the same entry, audience and signing key until half
// its life has passed (WAPI rule 12 allows reuse while it is comfortably far
// from expiry); a token signed by a key that is no longer active is never
// reused. With a Signer that is no JWTKeyReporter, whose active key the
// issuer cannot know, a token is reused until half its life, and while the
// Signer fails, until three quarters of it. A token signed by a key the
// Trust names as tainted (see Trust) is never served, fresh or cached, nor
// is a cached one whose key is no longer among the JWT authorities of the
// trust domain's bundle (revoked): a new one is signed. (A fresh token of
// a key the bundle does not hold yet is served, uncached: the bundle may
// lag a key just activated.) A caller holding no (such) identity gets an
// error wrapping endpoint.ErrNoIdentity. An entry whose token cannot be signed
// costs the caller only that token (the failure is logged and counted); when
// no token could be signed, the caller gets the last failure, which wraps
// endpoint.ErrUnavailable unless the Signer said otherwise.
func (i *Issuer) FetchJWTSVIDs(ctx context.Context, caller endpoint.Caller, params endpoint.JWTSVIDParams) ([]endpoint.JWTSVID, error) {
	a, err := i.att.Fresh(ctx, caller, maxSubscribeRounds)
	if err != nil {
		return nil, err
	}
	var out []endpoint.JWTSVID
	var failed error // the last failure of an entry skipped
	for _, e := range i.entries(a.Selectors) {
		if !params.ID.IsZero() && e.SPIFFEID != params.ID {
			continue
		}
		token, err := i.jwtFor(ctx, e, params.Audience)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// It costs the caller only this token.
			i.log.Warn("minting a JWT-SVID failed; the caller gets its other ones", "entry", e.ID,
				"spiffe_id", e.SPIFFEID.String(), "err", err)
			failed = err
			continue
		}
		out = append(out, endpoint.JWTSVID{ID: e.SPIFFEID, Token: token, Hint: e.Hint})
	}
	if len(out) == 0 && failed != nil {
		return nil, failed
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("issuer: %w: no entry applies to the caller", endpoint.ErrNoIdentity)
	}
	return out, nil
}

// jwtFor returns a JWT-SVID for entry e and audience, from the cache or
// freshly signed.
func (i *Issuer) jwtFor(ctx context.Context, e registry.Entry, audience []string) (string, error) {
	// The key names everything the token depends on; the audience keeps its
	// order, since it is copied into "aud" as given. The key ID is empty when
	// the Signer does not say which key is active (a remote Signer).
	var kid string
	if r, ok := i.signer.(JWTKeyReporter); ok {
		kid = r.ActiveJWTKeyID()
	}
	key := e.ID + "\x00" + strconv.FormatInt(e.Revision, 10) + "\x00" + kid +
		"\x00" + strings.Join(audience, "\x00")
	now := i.now()
	cached, ok := i.jwt.Get(key)
	// The token of a key tainted, or gone from the bundle (revoked), is
	// not served even while the Signer fails.
	ok = ok && i.trustsJWTKey(cached.kid)
	if ok && now.Before(cached.refreshAt) {
		return cached.token, nil
	}
	ttl := e.JWTSVIDTTL
	if ttl == 0 {
		ttl = i.cfg.JWTSVIDTTL
	}
	var start time.Time
	if i.cfg.Observer != nil {
		start = time.Now()
	}
	token, err := i.signer.SignJWTSVID(ctx, JWTSVIDRequest{Entry: e, Audience: audience, TTL: ttl})
	var took time.Duration
	if i.cfg.Observer != nil {
		took = time.Since(start)
	}
	var expiry time.Time
	var signedBy string
	if err == nil {
		// The key's expiry may have cut the lifetime short: read the real one.
		expiry, signedBy, err = svidcheck.JWTExpiry(token)
		switch {
		case err != nil:
		case !now.Before(expiry):
			err = fmt.Errorf("the signer returned a token that expired at %v", expiry)
		case i.keyTainted(false, signedBy):
			err = fmt.Errorf("the signer returned a token signed by the tainted key %q", signedBy)
		}
	}
	if o := i.cfg.Observer; o != nil {
		failed := 0
		if err != nil {
			failed = 1
		}
		o.Signed(svidJWT, 1, failed, took)
	}
	if err != nil {
		if ok && now.Before(cached.staleAt) {
			// Still comfortably far from expiry: better than no token.
			i.log.Warn("minting a JWT-SVID failed; serving the cached one", "entry", e.ID,
				"expiry", cached.expiry, "err", err)
			return cached.token, nil
		}
		return "", fmt.Errorf("issuer: minting a JWT-SVID for entry %s: %w", e.ID, retry.Retryable(err))
	}
	life := expiry.Sub(now)
	i.jwt.Put(key, cachedJWT{
		token:     token,
		kid:       signedBy,
		refreshAt: now.Add(life / 2),
		staleAt:   now.Add(life * 3 / 4),
		expiry:    expiry,
	}, now, maxCachedJWTs)
	return token, nil
}

// trustsJWTKey reports whether the trust domain's bundle holds the JWT key
// kid, and the key is not tainted.
func (i *Issuer) trustsJWTKey(kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.auth.TrustsJWTKey(kid)
}
