package spiffebundle

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/keyset"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Bundle is a collection of trusted public key material for a trust domain,
// conforming to the SPIFFE bundle format of the SPIFFE Trust Domain and Bundle
// standard: X.509 authorities, JWT authorities and WIT authorities, plus an
// optional sequence number and refresh hint.
//
// A Bundle is safe for concurrent use. Methods that return authorities return
// fresh slices and maps; certificates and keys are shared and must not be
// modified. JWT and WIT key IDs are unique across both kinds (WIT rule 16):
// [Bundle.AddJWTAuthority] and [Bundle.AddWITAuthority] refuse a key ID the
// other kind already uses, and [Bundle.Marshal] refuses a bundle where
// [Bundle.SetJWTAuthorities] or [Bundle.SetWITAuthorities] created a clash.
type Bundle struct {
	trustDomain spiffeid.TrustDomain

	// mu makes changes that span several fields atomic and gives readers
	// a consistent snapshot; the inner bundles also lock themselves.
	mu          sync.RWMutex
	x509        *x509bundle.Bundle
	jwt         *jwtbundle.Bundle
	wit         *witbundle.Bundle
	sequence    *uint64
	refreshHint *time.Duration
}

// New creates a new, empty bundle for the trust domain.
func New(trustDomain spiffeid.TrustDomain) *Bundle {
	return &Bundle{
		trustDomain: trustDomain,
		x509:        x509bundle.New(trustDomain),
		jwt:         jwtbundle.New(trustDomain),
		wit:         witbundle.New(trustDomain),
	}
}

// FromX509Authorities creates a bundle from X.509 certificates. The slice is
// copied; nil entries and duplicates are dropped.
func FromX509Authorities(trustDomain spiffeid.TrustDomain, x509Authorities []*x509.Certificate) *Bundle {
	b := New(trustDomain)
	b.x509 = x509bundle.FromX509Authorities(trustDomain, x509Authorities)
	return b
}

// FromJWTAuthorities creates a bundle from a copy of jwtAuthorities, keyed by
// key ID.
func FromJWTAuthorities(trustDomain spiffeid.TrustDomain, jwtAuthorities map[string]crypto.PublicKey) *Bundle {
	b := New(trustDomain)
	b.jwt = jwtbundle.FromJWTAuthorities(trustDomain, jwtAuthorities)
	return b
}

// FromWITAuthorities creates a bundle from a copy of witAuthorities, keyed by
// key ID.
func FromWITAuthorities(trustDomain spiffeid.TrustDomain, witAuthorities map[string]crypto.PublicKey) *Bundle {
	b := New(trustDomain)
	b.wit = witbundle.FromWITAuthorities(trustDomain, witAuthorities)
	return b
}

// FromX509Bundle creates a bundle holding a copy of the X.509 authorities of
// x509Bundle, in its trust domain. It panics if x509Bundle is nil.
func FromX509Bundle(x509Bundle *x509bundle.Bundle) *Bundle {
	return FromX509Authorities(x509Bundle.TrustDomain(), x509Bundle.X509Authorities())
}

// FromJWTBundle creates a bundle holding a copy of the JWT authorities of
// jwtBundle, in its trust domain. It panics if jwtBundle is nil.
func FromJWTBundle(jwtBundle *jwtbundle.Bundle) *Bundle {
	return FromJWTAuthorities(jwtBundle.TrustDomain(), jwtBundle.JWTAuthorities())
}

// FromWITBundle creates a bundle holding a copy of the WIT authorities of
// witBundle, in its trust domain. It panics if witBundle is nil.
func FromWITBundle(witBundle *witbundle.Bundle) *Bundle {
	return FromWITAuthorities(witBundle.TrustDomain(), witBundle.WITAuthorities())
}

// TrustDomain returns the trust domain that the bundle belongs to.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain {
	return b.trustDomain
}

// X509Authorities returns a copy of the X.509 authorities in the bundle.
func (b *Bundle) X509Authorities() []*x509.Certificate {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.x509.X509Authorities()
}

// AddX509Authority adds an X.509 authority to the bundle. If the authority
// already exists in the bundle (same DER), or is nil, the bundle is unchanged.
func (b *Bundle) AddX509Authority(x509Authority *x509.Certificate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.x509.AddX509Authority(x509Authority)
}

// RemoveX509Authority removes an X.509 authority (matched by DER) from the
// bundle.
func (b *Bundle) RemoveX509Authority(x509Authority *x509.Certificate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.x509.RemoveX509Authority(x509Authority)
}

// HasX509Authority reports whether the given X.509 authority (matched by DER)
// exists in the bundle.
func (b *Bundle) HasX509Authority(x509Authority *x509.Certificate) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.x509.HasX509Authority(x509Authority)
}

// SetX509Authorities replaces the X.509 authorities with a copy of
// authorities, dropping nil entries and duplicates.
func (b *Bundle) SetX509Authorities(authorities []*x509.Certificate) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.x509.SetX509Authorities(authorities)
}

// JWTAuthorities returns a copy of the JWT authorities in the bundle, keyed by
// key ID.
func (b *Bundle) JWTAuthorities() map[string]crypto.PublicKey {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.jwt.JWTAuthorities()
}

// FindJWTAuthority finds the JWT authority with the given key ID. If the
// authority is found, it is returned and the boolean is true. Otherwise, the
// returned value is nil and the boolean is false.
func (b *Bundle) FindJWTAuthority(keyID string) (crypto.PublicKey, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.jwt.FindJWTAuthority(keyID)
}

// HasJWTAuthority reports whether the bundle has a JWT authority with the
// given key ID.
func (b *Bundle) HasJWTAuthority(keyID string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.jwt.HasJWTAuthority(keyID)
}

// AddJWTAuthority adds a JWT authority to the bundle. If a JWT authority
// already exists under the key ID, it is replaced. The key ID must not be
// empty and must not name a WIT authority (WIT rule 16); the authority must
// be a non-nil public key.
func (b *Bundle) AddJWTAuthority(keyID string, jwtAuthority crypto.PublicKey) error {
	if err := checkAuthority(keyID, jwtAuthority); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wit.HasWITAuthority(keyID) {
		return fmt.Errorf("spiffebundle: key ID %q is already used by a WIT authority", keyID)
	}
	return b.jwt.AddJWTAuthority(keyID, jwtAuthority)
}

// RemoveJWTAuthority removes the JWT authority with the given key ID, if
// present.
func (b *Bundle) RemoveJWTAuthority(keyID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jwt.RemoveJWTAuthority(keyID)
}

// SetJWTAuthorities replaces the JWT authorities with a copy of
// jwtAuthorities.
func (b *Bundle) SetJWTAuthorities(jwtAuthorities map[string]crypto.PublicKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.jwt.SetJWTAuthorities(jwtAuthorities)
}

// WITAuthorities returns a copy of the WIT authorities in the bundle, keyed by
// key ID.
func (b *Bundle) WITAuthorities() map[string]crypto.PublicKey {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wit.WITAuthorities()
}

// FindWITAuthority finds the WIT authority with the given key ID. If the
// authority is found, it is returned and the boolean is true. Otherwise, the
// returned value is nil and the boolean is false.
func (b *Bundle) FindWITAuthority(keyID string) (crypto.PublicKey, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wit.FindWITAuthority(keyID)
}

// HasWITAuthority reports whether the bundle has a WIT authority with the
// given key ID.
func (b *Bundle) HasWITAuthority(keyID string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wit.HasWITAuthority(keyID)
}

// AddWITAuthority adds a WIT authority to the bundle. If a WIT authority
// already exists under the key ID, it is replaced. The key ID must not be
// empty and must not name a JWT authority (WIT rule 16); the authority must
// be a non-nil public key.
func (b *Bundle) AddWITAuthority(keyID string, witAuthority crypto.PublicKey) error {
	if err := checkAuthority(keyID, witAuthority); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.jwt.HasJWTAuthority(keyID) {
		return fmt.Errorf("spiffebundle: key ID %q is already used by a JWT authority", keyID)
	}
	return b.wit.AddWITAuthority(keyID, witAuthority)
}

// RemoveWITAuthority removes the WIT authority with the given key ID, if
// present.
func (b *Bundle) RemoveWITAuthority(keyID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wit.RemoveWITAuthority(keyID)
}

// SetWITAuthorities replaces the WIT authorities with a copy of
// witAuthorities.
func (b *Bundle) SetWITAuthorities(witAuthorities map[string]crypto.PublicKey) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wit.SetWITAuthorities(witAuthorities)
}

// Empty reports whether the bundle has no X.509, JWT or WIT authorities. An
// empty bundle validates no SVID of its trust domain (Bundle rule 11).
func (b *Bundle) Empty() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.x509.Empty() && b.jwt.Empty() && b.wit.Empty()
}

// RefreshHint returns the refresh hint. If the refresh hint is set in the
// bundle, it is returned and the boolean is true. Otherwise, the returned value
// is zero and the boolean is false.
func (b *Bundle) RefreshHint() (refreshHint time.Duration, ok bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.refreshHint == nil {
		return 0, false
	}
	return *b.refreshHint, true
}

// SetRefreshHint sets the refresh hint. The value is kept as given;
// [Bundle.Marshal] rounds it up to whole seconds and refuses a hint that is
// not positive.
func (b *Bundle) SetRefreshHint(refreshHint time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshHint = &refreshHint
}

// ClearRefreshHint clears the refresh hint.
func (b *Bundle) ClearRefreshHint() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshHint = nil
}

// SequenceNumber returns the sequence number. If the sequence number is set in
// the bundle, it is returned and the boolean is true. Otherwise, the returned
// value is zero and the boolean is false.
func (b *Bundle) SequenceNumber() (uint64, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.sequence == nil {
		return 0, false
	}
	return *b.sequence, true
}

// SetSequenceNumber sets the sequence number.
func (b *Bundle) SetSequenceNumber(sequenceNumber uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sequence = &sequenceNumber
}

// ClearSequenceNumber clears the sequence number.
func (b *Bundle) ClearSequenceNumber() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sequence = nil
}

// X509Bundle returns a new X.509 bundle holding a copy of the X.509
// authorities.
func (b *Bundle) X509Bundle() *x509bundle.Bundle {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.x509.Clone()
}

// JWTBundle returns a new JWT bundle holding a copy of the JWT authorities.
func (b *Bundle) JWTBundle() *jwtbundle.Bundle {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.jwt.Clone()
}

// WITBundle returns a new WIT bundle holding a copy of the WIT authorities.
func (b *Bundle) WITBundle() *witbundle.Bundle {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.wit.Clone()
}

// Clone returns a copy of the bundle that shares no mutable state with it;
// certificates and keys are shared.
func (b *Bundle) Clone() *Bundle {
	b.mu.RLock()
	defer b.mu.RUnlock()
	c := &Bundle{
		trustDomain: b.trustDomain,
		x509:        b.x509.Clone(),
		jwt:         b.jwt.Clone(),
		wit:         b.wit.Clone(),
	}
	if b.sequence != nil {
		seq := *b.sequence
		c.sequence = &seq
	}
	if b.refreshHint != nil {
		hint := *b.refreshHint
		c.refreshHint = &hint
	}
	return c
}

// Equal reports whether both bundles have the same trust domain, sequence
// number, refresh hint and authorities. The order of X.509 authorities does
// not matter. Two nil bundles are equal.
func (b *Bundle) Equal(other *Bundle) bool {
	if b == nil || other == nil {
		return b == other
	}
	if b == other {
		return true
	}
	// Compare snapshots so that the two locks are never held together.
	mine, theirs := b.Clone(), other.Clone()
	return mine.trustDomain == theirs.trustDomain &&
		equalPtr(mine.sequence, theirs.sequence) &&
		equalPtr(mine.refreshHint, theirs.refreshHint) &&
		mine.x509.Equal(theirs.x509) &&
		mine.jwt.Equal(theirs.jwt) &&
		mine.wit.Equal(theirs.wit)
}

// GetBundleForTrustDomain returns the bundle itself when trustDomain is the
// bundle's trust domain, and an error otherwise. It implements [Source].
func (b *Bundle) GetBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("spiffebundle: no SPIFFE bundle for trust domain %q", trustDomain)
	}
	return b, nil
}

// GetX509BundleForTrustDomain returns a new X.509 bundle with the X.509
// authorities when trustDomain is the bundle's trust domain, and an error
// otherwise. It implements [x509bundle.Source].
func (b *Bundle) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("spiffebundle: no X.509 bundle for trust domain %q", trustDomain)
	}
	return b.X509Bundle(), nil
}

// GetJWTBundleForTrustDomain returns a new JWT bundle with the JWT authorities
// when trustDomain is the bundle's trust domain, and an error otherwise. It
// implements [jwtbundle.Source].
func (b *Bundle) GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("spiffebundle: no JWT bundle for trust domain %q", trustDomain)
	}
	return b.JWTBundle(), nil
}

// GetWITBundleForTrustDomain returns a new WIT bundle with the WIT authorities
// when trustDomain is the bundle's trust domain, and an error otherwise. It
// implements [witbundle.Source].
func (b *Bundle) GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*witbundle.Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("spiffebundle: no WIT bundle for trust domain %q", trustDomain)
	}
	return b.WITBundle(), nil
}

func checkAuthority(keyID string, key crypto.PublicKey) error {
	if err := keyset.Check(keyID, key); err != nil {
		return fmt.Errorf("spiffebundle: %w", err)
	}
	return nil
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
