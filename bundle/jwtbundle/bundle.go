package jwtbundle

import (
	"crypto"
	"fmt"
	"io"

	"github.com/spiffekit/spiffekit/internal/jwkutil"
	"github.com/spiffekit/spiffekit/internal/keyset"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// MaxBundleSize is the largest JWK Set document, in bytes, that [Parse],
	// [Read] and [Load] accept.
	MaxBundleSize = jwkutil.MaxDocumentSize

	// MaxKeys is the largest number of keys a parsed document may hold.
	MaxKeys = jwkutil.MaxKeys
)

// Bundle is a collection of trusted JWT authorities for a trust domain.
//
// A Bundle is safe for concurrent use. Methods that return authorities return
// a fresh map; the keys themselves are shared and must not be modified. The
// zero value is an empty bundle of the zero trust domain.
type Bundle struct {
	trustDomain spiffeid.TrustDomain

	keys keyset.Set
}

// New creates a new, empty bundle for the trust domain.
func New(trustDomain spiffeid.TrustDomain) *Bundle {
	return &Bundle{trustDomain: trustDomain}
}

// FromJWTAuthorities creates a bundle from a copy of jwtAuthorities, keyed by
// key ID. Like go-spiffe it does not validate the map; [Bundle.Marshal]
// refuses entries that are not public keys.
func FromJWTAuthorities(trustDomain spiffeid.TrustDomain, jwtAuthorities map[string]crypto.PublicKey) *Bundle {
	b := New(trustDomain)
	b.keys.Replace(jwtAuthorities)
	return b
}

// Load loads a bundle from a file holding a standard RFC 7517 JWK Set. Files
// larger than [MaxBundleSize] are rejected.
func Load(trustDomain spiffeid.TrustDomain, path string) (*Bundle, error) {
	b, err := jwkutil.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("jwtbundle: unable to read JWT bundle: %w", err)
	}
	return Parse(trustDomain, b)
}

// Read decodes a bundle from a standard RFC 7517 JWK Set read from r. At most
// [MaxBundleSize] bytes are read; longer input is an error.
func Read(trustDomain spiffeid.TrustDomain, r io.Reader) (*Bundle, error) {
	b, err := jwkutil.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("jwtbundle: unable to read: %w", err)
	}
	return Parse(trustDomain, b)
}

// Parse parses a bundle from a standard RFC 7517 JWK Set. See the package
// documentation for the rules; unlike go-spiffe it rejects a missing "keys"
// member, duplicate key IDs, private key members and "oct" keys, and skips
// (rather than fails on) keys of unknown type.
func Parse(trustDomain spiffeid.TrustDomain, bundleBytes []byte) (*Bundle, error) {
	keys, err := jwkutil.ParseAuthorities(bundleBytes)
	if err != nil {
		return nil, fmt.Errorf("jwtbundle: %w", err)
	}
	return FromJWTAuthorities(trustDomain, keys), nil
}

// TrustDomain returns the trust domain that the bundle belongs to.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain {
	return b.trustDomain
}

// JWTAuthorities returns a copy of the JWT authorities in the bundle, keyed by
// key ID.
func (b *Bundle) JWTAuthorities() map[string]crypto.PublicKey {
	return b.keys.All()
}

// FindJWTAuthority finds the JWT authority with the given key ID. If the
// authority is found, it is returned and the boolean is true. Otherwise, the
// returned value is nil and the boolean is false.
func (b *Bundle) FindJWTAuthority(keyID string) (crypto.PublicKey, bool) {
	return b.keys.Find(keyID)
}

// HasJWTAuthority reports whether the bundle has a JWT authority with the
// given key ID.
func (b *Bundle) HasJWTAuthority(keyID string) bool {
	return b.keys.Has(keyID)
}

// AddJWTAuthority adds a JWT authority to the bundle. If a JWT authority
// already exists under the key ID, it is replaced. The key ID must not be
// empty, and the authority must be a non-nil public key (go-spiffe accepts
// any value).
func (b *Bundle) AddJWTAuthority(keyID string, jwtAuthority crypto.PublicKey) error {
	if err := b.keys.Add(keyID, jwtAuthority); err != nil {
		return fmt.Errorf("jwtbundle: %w", err)
	}
	return nil
}

// RemoveJWTAuthority removes the JWT authority with the given key ID from the
// bundle, if present.
func (b *Bundle) RemoveJWTAuthority(keyID string) {
	b.keys.Remove(keyID)
}

// SetJWTAuthorities replaces the JWT authorities with a copy of
// jwtAuthorities.
func (b *Bundle) SetJWTAuthorities(jwtAuthorities map[string]crypto.PublicKey) {
	b.keys.Replace(jwtAuthorities)
}

// Empty reports whether the bundle has no JWT authorities. An empty bundle
// validates no JWT-SVID (Bundle rule 11).
func (b *Bundle) Empty() bool {
	return b.keys.Len() == 0
}

// Marshal encodes the bundle as a standard RFC 7517 JWK Set, sorted by key ID,
// without "use" or any SPIFFE-specific member. It fails if an authority is not
// a public key go-jose can encode.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := b.keys.Marshal()
	if err != nil {
		return nil, fmt.Errorf("jwtbundle: %w", err)
	}
	return out, nil
}

// Equal reports whether both bundles have the same trust domain and the same
// key IDs mapped to equal public keys. Two nil bundles are equal.
func (b *Bundle) Equal(other *Bundle) bool {
	if b == nil || other == nil {
		return b == other
	}
	return b.trustDomain == other.trustDomain && b.keys.Equal(&other.keys)
}

// Clone returns a copy of the bundle with its own authority map; the keys are
// shared.
func (b *Bundle) Clone() *Bundle {
	return FromJWTAuthorities(b.trustDomain, b.keys.All())
}

// GetJWTBundleForTrustDomain returns the bundle itself when trustDomain is the
// bundle's trust domain, and an error otherwise. It implements [Source].
func (b *Bundle) GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("jwtbundle: no JWT bundle for trust domain %q", trustDomain)
	}
	return b, nil
}
