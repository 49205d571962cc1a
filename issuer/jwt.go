package issuer

import (
	"context"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/issuer/internal/jwtmint"
	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

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
		token, err := i.jwt.For(ctx, e, params.Audience)
		if err != nil {
			err = fmt.Errorf("issuer: minting a JWT-SVID for entry %s: %w", e.ID, retry.Retryable(err))
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

// newJWTMinter returns the minter of the JWT-SVIDs of FetchJWTSVIDs, which
// has i.signer sign them.
func (i *Issuer) newJWTMinter() *jwtmint.Minter {
	cfg := jwtmint.Config{
		Sign: func(ctx context.Context, e registry.Entry, audience []string, ttl time.Duration) (string, error) {
			return i.signer.SignJWTSVID(ctx, JWTSVIDRequest{Entry: e, Audience: audience, TTL: ttl})
		},
		Trusted:  i.trustsJWTKey,
		Tainted:  func(kid string) bool { return i.keyTainted(false, kid) },
		TTL:      i.cfg.JWTSVIDTTL,
		Now:      i.now,
		Observer: i.cfg.Observer,
		Log:      i.log,
	}
	if r, ok := i.signer.(JWTKeyReporter); ok {
		cfg.ActiveKeyID = r.ActiveJWTKeyID
	}
	return jwtmint.New(cfg)
}

// trustsJWTKey reports whether the trust domain's bundle holds the JWT key
// kid, and the key is not tainted.
func (i *Issuer) trustsJWTKey(kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.auth.TrustsJWTKey(kid)
}
