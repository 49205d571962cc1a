package issuer

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/issuer/internal/retry"
	"github.com/spiffekit/spiffekit/issuer/internal/witmint"
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

// newWITMinter returns the minter of the WIT-SVIDs of FetchWITSVID, which
// has i.signer sign them when it is a WITSigner: SubscribeWIT, which
// uses it, refuses every caller otherwise.
func (i *Issuer) newWITMinter() *witmint.Minter {
	s, _ := i.signer.(WITSigner)
	return witmint.New(witmint.Config{
		Sign: func(ctx context.Context, e registry.Entry, key crypto.Signer) (string, error) {
			return s.SignWITSVID(ctx, WITSVIDRequest{Entry: e, Key: key, KeyAlgorithm: witmint.KeyAlgorithm, TTL: i.cfg.WITSVIDTTL})
		},
		Fail: func(e registry.Entry, err error) error {
			return fmt.Errorf("issuer: minting a WIT-SVID for entry %s: %w", e.ID, retry.Retryable(err))
		},
		Trusted:  i.trustsWITKey,
		Tainted:  func(kid string) bool { return i.keyTainted(true, kid) },
		Now:      i.now,
		Observer: i.cfg.Observer,
		Log:      i.log,
	})
}

// trustsWITKey reports whether the trust domain's bundle holds the WIT key
// kid, and the key is not tainted.
func (i *Issuer) trustsWITKey(kid string) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.auth.TrustsWITKey(kid)
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
	if _, ok := i.signer.(WITSigner); !ok {
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
		Collect: func(ctx context.Context) ([]endpoint.WITSVID, time.Time, error) { return i.collectWITs(ctx, base) },
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
func (i *Issuer) collectWITs(ctx context.Context, sub *subscription) ([]endpoint.WITSVID, time.Time, error) {
	i.mu.Lock()
	sels := sub.attested.Selectors
	i.mu.Unlock()
	var wits []endpoint.WITSVID
	var next time.Time
	var failed error
	for _, e := range i.entries(sels) {
		c, err := i.wit.For(ctx, e)
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
		wits = append(wits, endpoint.WITSVID{ID: e.SPIFFEID, Token: c.Token, Key: c.Key, Hint: e.Hint})
		if next.IsZero() || c.RefreshAt.Before(next) {
			next = c.RefreshAt
		}
	}
	return wits, next, failed
}
