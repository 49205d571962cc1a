package witbundle

import (
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Set is a set of bundles, keyed by trust domain. It is safe for concurrent
// use, and its zero value is an empty set ready to use. A Set holds the bundles it is given, not copies: a change made to a
// bundle after adding it is visible through the set.
type Set struct {
	mu      sync.RWMutex
	bundles map[spiffeid.TrustDomain]*Bundle
}

// NewSet creates a new set initialized with the given bundles. A later bundle
// replaces an earlier one of the same trust domain; nil bundles are skipped.
func NewSet(bundles ...*Bundle) *Set {
	s := &Set{bundles: make(map[spiffeid.TrustDomain]*Bundle, len(bundles))}
	for _, b := range bundles {
		if b != nil {
			s.bundles[b.TrustDomain()] = b
		}
	}
	return s
}

// Add adds a bundle to the set. If a bundle already exists for its trust
// domain, it is replaced (Bundle rule 3). Adding nil is a no-op.
func (s *Set) Add(bundle *Bundle) {
	if bundle == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundles == nil {
		s.bundles = make(map[spiffeid.TrustDomain]*Bundle)
	}
	s.bundles[bundle.TrustDomain()] = bundle
}

// Remove removes the bundle for the given trust domain, if any.
func (s *Set) Remove(trustDomain spiffeid.TrustDomain) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bundles, trustDomain)
}

// Has reports whether the set has a bundle for the given trust domain.
func (s *Set) Has(trustDomain spiffeid.TrustDomain) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.bundles[trustDomain]
	return ok
}

// Get returns the bundle for the given trust domain. If the bundle is in the
// set it is returned and the boolean is true. Otherwise, the returned value is
// nil and the boolean is false.
func (s *Set) Get(trustDomain spiffeid.TrustDomain) (*Bundle, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bundles[trustDomain]
	return b, ok
}

// Bundles returns the bundles in the set, sorted by trust domain, in a new
// slice.
func (s *Set) Bundles() []*Bundle {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.SortedFunc(maps.Values(s.bundles), func(a, b *Bundle) int {
		return a.TrustDomain().Compare(b.TrustDomain())
	})
}

// Len returns the number of bundles in the set.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.bundles)
}

// GetWITBundleForTrustDomain returns the WIT bundle for the given trust
// domain, or an error if the set has none. It implements [Source].
func (s *Set) GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bundles[trustDomain]
	if !ok {
		return nil, fmt.Errorf("witbundle: no WIT bundle for trust domain %q", trustDomain)
	}
	return b, nil
}
