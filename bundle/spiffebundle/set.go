package spiffebundle

import (
	"fmt"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/internal/bundleset"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Set is a set of bundles, keyed by trust domain. It is safe for concurrent
// use, and its zero value is an empty set ready to use. A Set holds the
// bundles it is given, not copies: a change made to a bundle after adding it
// is visible through the set.
type Set struct {
	set bundleset.Set[*Bundle]
}

// NewSet creates a new set initialized with the given bundles. A later bundle
// replaces an earlier one of the same trust domain; nil bundles are skipped.
func NewSet(bundles ...*Bundle) *Set {
	s := new(Set)
	s.set.Add(bundles...)
	return s
}

// Add adds a bundle to the set. If a bundle already exists for its trust
// domain, it is replaced (Bundle rule 3). Adding nil is a no-op.
func (s *Set) Add(bundle *Bundle) {
	s.set.Add(bundle)
}

// Remove removes the bundle for the given trust domain, if any.
func (s *Set) Remove(trustDomain spiffeid.TrustDomain) {
	s.set.Remove(trustDomain)
}

// Has reports whether the set has a bundle for the given trust domain.
func (s *Set) Has(trustDomain spiffeid.TrustDomain) bool {
	return s.set.Has(trustDomain)
}

// Get returns the bundle for the given trust domain. If the bundle is in the
// set it is returned and the boolean is true. Otherwise, the returned value is
// nil and the boolean is false.
func (s *Set) Get(trustDomain spiffeid.TrustDomain) (*Bundle, bool) {
	return s.set.Get(trustDomain)
}

// Bundles returns the bundles in the set, sorted by trust domain, in a new
// slice.
func (s *Set) Bundles() []*Bundle {
	return s.set.Bundles()
}

// Len returns the number of bundles in the set.
func (s *Set) Len() int {
	return s.set.Len()
}

// GetBundleForTrustDomain returns the SPIFFE bundle for the given trust
// domain, or an error if the set has none. It implements [Source].
func (s *Set) GetBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	if b, ok := s.set.Get(trustDomain); ok {
		return b, nil
	}
	return nil, fmt.Errorf("spiffebundle: no SPIFFE bundle for trust domain %q", trustDomain)
}

// GetX509BundleForTrustDomain returns a new X.509 bundle with the X.509
// authorities of the trust domain's bundle, or an error if the set has none.
// It implements [x509bundle.Source].
func (s *Set) GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	b, ok := s.Get(trustDomain)
	if !ok {
		return nil, fmt.Errorf("spiffebundle: no X.509 bundle for trust domain %q", trustDomain)
	}
	return b.X509Bundle(), nil
}

// GetJWTBundleForTrustDomain returns a new JWT bundle with the JWT authorities
// of the trust domain's bundle, or an error if the set has none. It implements
// [jwtbundle.Source].
func (s *Set) GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	b, ok := s.Get(trustDomain)
	if !ok {
		return nil, fmt.Errorf("spiffebundle: no JWT bundle for trust domain %q", trustDomain)
	}
	return b.JWTBundle(), nil
}

// GetWITBundleForTrustDomain returns a new WIT bundle with the WIT authorities
// of the trust domain's bundle, or an error if the set has none. It implements
// [witbundle.Source].
func (s *Set) GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*witbundle.Bundle, error) {
	b, ok := s.Get(trustDomain)
	if !ok {
		return nil, fmt.Errorf("spiffebundle: no WIT bundle for trust domain %q", trustDomain)
	}
	return b.WITBundle(), nil
}
