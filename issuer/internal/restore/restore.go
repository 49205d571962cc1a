package restore

import (
	"crypto"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/jwtutil"
	"github.com/spiffekit/spiffekit/issuer/internal/svidcheck"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Result says what was done with the SVIDs given: issuer.RestoreResult,
// field for field.
type Result struct {
	Restored, Expired, Stale, Untrusted, Tainted int
}

// View is what saved SVIDs are checked against, taken once for all the
// SVIDs of a call.
type View struct {
	// Entries are the entries the issuer indexes now, by ID.
	Entries map[string]registry.Entry
	// Now is the issuer's time.
	Now time.Time
	// Bundle is the trust domain's bundle.
	Bundle *spiffebundle.Bundle
	// Tainted holds the DER of the tainted X.509 CAs, TaintedWIT the kids
	// of the tainted WIT keys.
	Tainted, TaintedWIT map[string]bool
}

// entry returns the entry an SVID saved for entry id at revision rev was
// minted for, or false when the view no longer holds the entry at that
// revision: the SVID is stale.
func (v View) entry(id string, rev int64) (registry.Entry, bool) {
	e, ok := v.Entries[id]
	return e, ok && e.Revision == rev
}

// Kept is an SVID that passed its checks, for entry ID, for the issuer to
// take unless it holds one for the entry already.
type Kept[T any] struct {
	ID   string
	SVID T
}

// X509SVID is a saved X509-SVID: issuer.SavedX509SVID, field for field.
type X509SVID struct {
	EntryID             string
	Revision            int64
	Certificates        [][]byte
	PrivateKey          []byte
	NotBefore, NotAfter time.Time
	MintedAt            time.Time
}

// X509 is an X509-SVID that passed its checks, as the issuer holds it
// (see issuer/internal/x509store).
type X509 struct {
	// Revision is that of its entry.
	Revision int64
	// SVID is what the Workload API sends.
	SVID *endpoint.RawX509SVID
	// RefreshAt is half its life from when it was minted (or became
	// valid).
	RefreshAt time.Time
	// NotBefore and NotAfter are the leaf's.
	NotBefore, NotAfter time.Time
	// MintedAt is when it was minted, by the issuer's clock.
	MintedAt time.Time
}

// X509s checks saved X509-SVIDs against v and returns those to take back,
// due at half their life from when they were minted (or became valid), and
// what it left out. It checks each chain above the leaf once, with the
// leaf of one SVID it signed (svidcheck.Saved); of every other SVID, that
// it has a leaf, a key and dates. It does not parse each: ten thousand of
// them took seconds.
func X509s(v View, saved iter.Seq[*X509SVID]) ([]Kept[X509], Result, error) {
	var res Result
	var kept []Kept[X509]
	checked := make(map[string]bool) // the chains above the leaf, checked
	for s := range saved {
		e, ok := v.entry(s.EntryID, s.Revision)
		if !ok {
			res.Stale++
			continue
		}
		if len(s.Certificates) < 2 || len(s.Certificates) > x509svid.MaxChainLength || len(s.PrivateKey) == 0 ||
			slices.ContainsFunc(s.Certificates, func(der []byte) bool { return len(der) == 0 }) ||
			s.NotBefore.IsZero() || !s.NotBefore.Before(s.NotAfter) {
			return nil, Result{}, fmt.Errorf("issuer: restoring the X509-SVID of entry %s: it lacks a certificate, its key or its dates", e.ID)
		}
		if !v.Now.Before(s.NotAfter) {
			res.Expired++
			continue
		}
		if slices.ContainsFunc(s.Certificates[1:], func(der []byte) bool { return v.Tainted[string(der)] }) {
			res.Tainted++
			continue
		}
		var key strings.Builder
		for _, der := range s.Certificates[1:] {
			key.Write(der)
			key.WriteByte(0)
		}
		if !checked[key.String()] {
			if err := svidcheck.Saved(e, s.Certificates, s.PrivateKey, s.NotBefore, s.NotAfter, v.Bundle, v.Now); err != nil {
				return nil, Result{}, fmt.Errorf("issuer: restoring the X509-SVID of entry %s: %w", e.ID, err)
			}
			checked[key.String()] = true
		}
		start := s.NotBefore
		if s.MintedAt.After(start) {
			start = s.MintedAt
		}
		chain := make([][]byte, len(s.Certificates))
		copy(chain, s.Certificates)
		kept = append(kept, Kept[X509]{ID: e.ID, SVID: X509{
			Revision:  e.Revision,
			SVID:      &endpoint.RawX509SVID{ID: e.SPIFFEID, Certificates: chain, PrivateKey: s.PrivateKey, Hint: e.Hint},
			RefreshAt: start.Add(s.NotAfter.Sub(start) / 2),
			NotBefore: s.NotBefore,
			NotAfter:  s.NotAfter,
			MintedAt:  s.MintedAt.Round(0),
		}})
	}
	return kept, res, nil
}

// WITSVID is a saved WIT-SVID: issuer.SavedWITSVID, field for field.
type WITSVID struct {
	EntryID    string
	Revision   int64
	Token      string
	PrivateKey []byte
	MintedAt   time.Time
}

// WIT is a WIT-SVID that passed its checks.
type WIT struct {
	// Revision is that of its entry, Kid that of the key that signed it.
	Revision int64
	Kid      string
	// Token is the WIT-SVID, Key its private key as a JWK (JSON).
	Token, Key string
	// RefreshAt is half its life from when it was minted, Expiry its
	// "exp".
	RefreshAt, Expiry time.Time
	// MintedAt is when it was minted, by the issuer's clock.
	MintedAt time.Time
}

// WITs checks saved WIT-SVIDs against v and returns those to take back and
// what it left out. Each is checked in full: its length (at most maxLen
// bytes for the token and the key, each), its signature, with the
// bundle's WIT key it names, and that it names its entry's SPIFFE ID and
// binds its private key. Those whose key is not in the bundle are
// Untrusted; those whose key is tainted, Tainted.
func WITs(v View, saved iter.Seq[*WITSVID], maxLen int) ([]Kept[WIT], Result, error) {
	var res Result
	var kept []Kept[WIT]
	for s := range saved {
		e, ok := v.entry(s.EntryID, s.Revision)
		if !ok {
			res.Stale++
			continue
		}
		if len(s.Token) > maxLen || len(s.PrivateKey) > maxLen {
			return nil, Result{}, fmt.Errorf("issuer: restoring the WIT-SVID of entry %s: longer than %d bytes", e.ID, maxLen)
		}
		var jwk jose.JSONWebKey
		if err := jwk.UnmarshalJSON(s.PrivateKey); err != nil {
			return nil, Result{}, fmt.Errorf("issuer: restoring the WIT-SVID of entry %s: its key does not parse", e.ID) // no detail of a secret
		}
		key, ok := jwk.Key.(crypto.Signer)
		if !ok || jwk.IsPublic() {
			return nil, Result{}, fmt.Errorf("issuer: restoring the WIT-SVID of entry %s: its key is no private key", e.ID)
		}
		expiry, kid, err := svidcheck.WIT(s.Token, e.SPIFFEID, key.Public())
		if err != nil {
			return nil, Result{}, fmt.Errorf("issuer: restoring the WIT-SVID of entry %s: %w", e.ID, err)
		}
		if !v.Now.Before(expiry) {
			res.Expired++
			continue
		}
		pub, ok := v.Bundle.FindWITAuthority(kid)
		if !ok {
			// Its key left the bundle (revoked) while the program was
			// down: never served again.
			res.Untrusted++
			continue
		}
		if v.TaintedWIT[kid] {
			// Tainted before the program stopped (it hands the taint back
			// through the Trust): never served again.
			res.Tainted++
			continue
		}
		jws, err := jose.ParseSigned(s.Token, jwtutil.Algorithms())
		if err == nil {
			_, err = jws.Verify(pub)
		}
		if err != nil {
			return nil, Result{}, fmt.Errorf("issuer: restoring the WIT-SVID of entry %s: its signature does not verify with WIT key %q of the bundle", e.ID, kid)
		}
		start := s.MintedAt
		if start.IsZero() || start.After(v.Now) {
			start = v.Now
		}
		kept = append(kept, Kept[WIT]{ID: e.ID, SVID: WIT{
			Revision: e.Revision, Kid: kid, Token: s.Token, Key: string(s.PrivateKey),
			RefreshAt: start.Add(expiry.Sub(start) / 2), Expiry: expiry, MintedAt: s.MintedAt.Round(0),
		}})
	}
	return kept, res, nil
}
