package witbundle

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

// Bundle is a collection of trusted WIT authorities for a trust domain.
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

// FromWITAuthorities creates a bundle from a copy of witAuthorities, keyed by
// key ID. Like go-spiffe it does not validate the map; [Bundle.Marshal]
// refuses entries that are not public keys.
func FromWITAuthorities(trustDomain spiffeid.TrustDomain, witAuthorities map[string]crypto.PublicKey) *Bundle {
	b := New(trustDomain)
	b.keys.Replace(witAuthorities)
	return b
}

// Load loads a bundle from a file holding a standard RFC 7517 JWK Set. Files
// larger than [MaxBundleSize] are rejected.
func Load(trustDomain spiffeid.TrustDomain, path string) (*Bundle, error) {
	b, err := jwkutil.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("witbundle: unable to read WIT bundle: %w", err)
	}
	return Parse(trustDomain, b)
}

// Read decodes a bundle from a standard RFC 7517 JWK Set read from r. At most
// [MaxBundleSize] bytes are read; longer input is an error.
func Read(trustDomain spiffeid.TrustDomain, r io.Reader) (*Bundle, error) {
	b, err := jwkutil.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("witbundle: unable to read: %w", err)
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
		return nil, fmt.Errorf("witbundle: %w", err)
	}
	return FromWITAuthorities(trustDomain, keys), nil
}

// TrustDomain returns the trust domain that the bundle belongs to.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain {
	return b.trustDomain
}

// WITAuthorities returns a copy of the WIT authorities in the bundle, keyed by
// key ID.
func (b *Bundle) WITAuthorities() map[string]crypto.PublicKey {
	return b.keys.All()
}

// FindWITAuthority finds the WIT authority with the given key ID. If the
// authority is found, it is returned and the boolean is true. Otherwise, the
// returned value is nil and the boolean is false.
func (b *Bundle) FindWITAuthority(keyID string) (crypto.PublicKey, bool) {
	return b.keys.Find(keyID)
}

// HasWITAuthority reports whether the bundle has a WIT authority with the
// given key ID.
func (b *Bundle) HasWITAuthority(keyID string) bool {
	return b.keys.Has(keyID)
}

// AddWITAuthority adds a WIT authority to the bundle. If a WIT authority
// already exists under the key ID, it is replaced. The key ID must not be
// empty, and the authority must be a non-nil public key (go-spiffe accepts
// any value).
func (b *Bundle) AddWITAuthority(keyID string, witAuthority crypto.PublicKey) error {
	if err := b.keys.Add(keyID, witAuthority); err != nil {
		return fmt.Errorf("witbundle: %w", err)
	}
	return nil
}

// RemoveWITAuthority removes the WIT authority with the given key ID from the
// bundle, if present.
func (b *Bundle) RemoveWITAuthority(keyID string) {
	b.keys.Remove(keyID)
}

// SetWITAuthorities replaces the WIT authorities with a copy of
// witAuthorities.
func (b *Bundle) SetWITAuthorities(witAuthorities map[string]crypto.PublicKey) {
	b.keys.Replace(witAuthorities)
}

// Empty reports whether the bundle has no WIT authorities. An empty bundle
// validates no WIT-SVID (Bundle rule 11).
func (b *Bundle) Empty() bool {
	return b.keys.Len() == 0
}

// Marshal encodes the bundle as a standard RFC 7517 JWK Set, sorted by key ID,
// without "use" or any SPIFFE-specific member. It fails if an authority is not
// a public key go-jose can encode.
func (b *Bundle) Marshal() ([]byte, error) {
	out, err := b.keys.Marshal()
	if err != nil {
		return nil, fmt.Errorf("witbundle: %w", err)
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
	return FromWITAuthorities(b.trustDomain, b.keys.All())
}

// GetWITBundleForTrustDomain returns the bundle itself when trustDomain is the
// bundle's trust domain, and an error otherwise. It implements [Source].
func (b *Bundle) GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("witbundle: no WIT bundle for trust domain %q", trustDomain)
	}
	return b, nil
}
