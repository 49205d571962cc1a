package x509bundle

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxBundleSize is the largest encoded bundle, in bytes, that [Parse],
// [ParseRaw], [Read] and [Load] accept. It bounds the work an untrusted peer
// can cause; a bundle with a few hundred roots is far below it.
const MaxBundleSize = 4 << 20

// Bundle is a collection of trusted X.509 authorities for a trust domain.
//
// A Bundle is safe for concurrent use. Methods that return authorities return a
// fresh slice; the certificates themselves are shared and must not be modified.
// A Bundle never holds the same certificate twice or a nil certificate.
type Bundle struct {
	trustDomain spiffeid.TrustDomain

	mu          sync.RWMutex
	authorities []*x509.Certificate
}

// New creates a new, empty bundle for the trust domain.
func New(trustDomain spiffeid.TrustDomain) *Bundle {
	return &Bundle{trustDomain: trustDomain}
}

// FromX509Authorities creates a bundle from X.509 certificates. The slice is
// copied; nil entries and duplicates (same DER) are dropped, keeping the first
// occurrence. go-spiffe keeps duplicates.
func FromX509Authorities(trustDomain spiffeid.TrustDomain, authorities []*x509.Certificate) *Bundle {
	return &Bundle{trustDomain: trustDomain, authorities: dedup(authorities)}
}

// Load loads a bundle from a file of PEM-encoded CERTIFICATE blocks. Files
// larger than [MaxBundleSize] are rejected.
func Load(trustDomain spiffeid.TrustDomain, path string) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("x509bundle: unable to load X.509 bundle file: %w", err)
	}
	defer f.Close()
	b, err := readLimited(f)
	if err != nil {
		return nil, fmt.Errorf("x509bundle: unable to load X.509 bundle file: %w", err)
	}
	return Parse(trustDomain, b)
}

// Read decodes a bundle of PEM-encoded CERTIFICATE blocks from r. At most
// [MaxBundleSize] bytes are read; longer input is an error.
func Read(trustDomain spiffeid.TrustDomain, r io.Reader) (*Bundle, error) {
	b, err := readLimited(r)
	if err != nil {
		return nil, fmt.Errorf("x509bundle: unable to read X.509 bundle: %w", err)
	}
	return Parse(trustDomain, b)
}

// Parse parses a bundle from PEM-encoded CERTIFICATE blocks. Empty input
// yields an empty bundle, as in go-spiffe. Non-empty input without any
// CERTIFICATE block is an error; blocks of other types are skipped. Duplicate
// certificates are dropped.
func Parse(trustDomain spiffeid.TrustDomain, b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("x509bundle: bundle exceeds %d bytes", MaxBundleSize)
	}
	if len(b) == 0 {
		return New(trustDomain), nil
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("x509bundle: cannot parse certificate: %w", err)
	}
	return FromX509Authorities(trustDomain, certs), nil
}

// ParseRaw parses a bundle from ASN.1 DER certificates concatenated with no
// padding, the encoding of the Workload API. Empty input yields an empty
// bundle. Duplicate certificates are dropped.
func ParseRaw(trustDomain spiffeid.TrustDomain, b []byte) (*Bundle, error) {
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("x509bundle: bundle exceeds %d bytes", MaxBundleSize)
	}
	if len(b) == 0 {
		return New(trustDomain), nil
	}
	certs, err := x509.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("x509bundle: cannot parse certificate: %w", err)
	}
	return FromX509Authorities(trustDomain, certs), nil
}

// TrustDomain returns the trust domain that the bundle belongs to.
func (b *Bundle) TrustDomain() spiffeid.TrustDomain {
	return b.trustDomain
}

// X509Authorities returns a copy of the X.509 authorities in the bundle, in
// the order they were added.
func (b *Bundle) X509Authorities() []*x509.Certificate {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return slices.Clone(b.authorities)
}

// AddX509Authority adds an X.509 authority to the bundle. If the authority
// already exists in the bundle (same DER), or is nil, the bundle is unchanged.
func (b *Bundle) AddX509Authority(x509Authority *x509.Certificate) {
	if x509Authority == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if indexOf(b.authorities, x509Authority) < 0 {
		b.authorities = append(b.authorities, x509Authority)
	}
}

// RemoveX509Authority removes an X.509 authority (matched by DER) from the
// bundle. Removing an absent authority is a no-op.
func (b *Bundle) RemoveX509Authority(x509Authority *x509.Certificate) {
	if x509Authority == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if i := indexOf(b.authorities, x509Authority); i >= 0 {
		b.authorities = slices.Delete(slices.Clone(b.authorities), i, i+1)
	}
}

// HasX509Authority reports whether the given X.509 authority (matched by DER)
// exists in the bundle.
func (b *Bundle) HasX509Authority(x509Authority *x509.Certificate) bool {
	if x509Authority == nil {
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return indexOf(b.authorities, x509Authority) >= 0
}

// SetX509Authorities replaces the X.509 authorities in the bundle with a copy
// of x509Authorities, dropping nil entries and duplicates.
func (b *Bundle) SetX509Authorities(x509Authorities []*x509.Certificate) {
	authorities := dedup(x509Authorities)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.authorities = authorities
}

// Empty reports whether the bundle has no X.509 authorities. An empty bundle
// validates no X509-SVID (Bundle rule 11).
func (b *Bundle) Empty() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.authorities) == 0
}

// Marshal encodes the X.509 authorities as PEM CERTIFICATE blocks, in order.
// An empty bundle encodes as empty output. The error is always nil; it exists
// for compatibility with go-spiffe.
func (b *Bundle) Marshal() ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return pemutil.EncodeCertificates(b.authorities), nil
}

// Equal reports whether both bundles have the same trust domain and the same
// set of X.509 authorities. Unlike go-spiffe, the order of the authorities does
// not matter. Two nil bundles are equal.
func (b *Bundle) Equal(other *Bundle) bool {
	if b == nil || other == nil {
		return b == other
	}
	if b == other {
		return true
	}
	if b.trustDomain != other.trustDomain {
		return false
	}
	mine := b.X509Authorities()
	theirs := other.X509Authorities()
	if len(mine) != len(theirs) {
		return false
	}
	// Both slices are free of duplicates, so inclusion one way means equality.
	set := make(map[string]struct{}, len(theirs))
	for _, c := range theirs {
		set[string(c.Raw)] = struct{}{}
	}
	for _, c := range mine {
		if _, ok := set[string(c.Raw)]; !ok {
			return false
		}
	}
	return true
}

// Clone returns a deep copy of the bundle's authority list; the certificates
// are shared.
func (b *Bundle) Clone() *Bundle {
	return &Bundle{trustDomain: b.trustDomain, authorities: b.X509Authorities()}
}

// GetX509BundleForTrustDomain returns the bundle itself when trustDomain is
// the bundle's trust domain, and an error otherwise. It implements [Source].
func (b *Bundle) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	if b.trustDomain != trustDomain {
		return nil, fmt.Errorf("x509bundle: no X.509 bundle found for trust domain: %q", trustDomain)
	}
	return b, nil
}

func indexOf(certs []*x509.Certificate, cert *x509.Certificate) int {
	return slices.IndexFunc(certs, func(c *x509.Certificate) bool {
		return bytes.Equal(c.Raw, cert.Raw)
	})
}

// dedup copies certs without nil entries and duplicates. It is linear in the
// input so that a large untrusted bundle cannot make it quadratic.
func dedup(certs []*x509.Certificate) []*x509.Certificate {
	seen := make(map[string]struct{}, len(certs))
	var out []*x509.Certificate
	for _, c := range certs {
		if c == nil {
			continue
		}
		if _, dup := seen[string(c.Raw)]; dup {
			continue
		}
		seen[string(c.Raw)] = struct{}{}
		out = append(out, c)
	}
	return out
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBundleSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxBundleSize {
		return nil, fmt.Errorf("bundle exceeds %d bytes", MaxBundleSize)
	}
	return b, nil
}
