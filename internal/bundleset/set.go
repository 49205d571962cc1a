package bundleset

import (
	"maps"
	"slices"
	"sync"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Bundle is what a [Set] holds: a comparable handle to a bundle, in practice a
// pointer, whose zero value (nil) stands for no bundle.
type Bundle interface {
	comparable
	TrustDomain() spiffeid.TrustDomain
}

// Set is a set of bundles keyed by trust domain, at most one per trust domain
// (Bundle rule 3). It is safe for concurrent use and its zero value is an
// empty set ready to use. A Set must not be copied after first use.
type Set[B Bundle] struct {
	mu      sync.RWMutex
	bundles map[spiffeid.TrustDomain]B
}

// Add adds bundles to the set in order. A bundle replaces the one the set
// holds for its trust domain, so the last of several wins; zero (nil) bundles
// are skipped.
func (s *Set[B]) Add(bundles ...B) {
	var none B
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range bundles {
		if b == none {
			continue
		}
		if s.bundles == nil {
			s.bundles = make(map[spiffeid.TrustDomain]B, len(bundles))
		}
		s.bundles[b.TrustDomain()] = b
	}
}

// Remove removes the bundle of trustDomain, if any.
func (s *Set[B]) Remove(trustDomain spiffeid.TrustDomain) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bundles, trustDomain)
}

// Has reports whether the set holds a bundle of trustDomain.
func (s *Set[B]) Has(trustDomain spiffeid.TrustDomain) bool {
	_, ok := s.Get(trustDomain)
	return ok
}

// Get returns the bundle of trustDomain and true, or the zero value (nil) and
// false when the set has none.
func (s *Set[B]) Get(trustDomain spiffeid.TrustDomain) (B, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.bundles[trustDomain]
	return b, ok
}

// Bundles returns the bundles in a new slice sorted by trust domain name, or
// nil when the set is empty.
func (s *Set[B]) Bundles() []B {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.SortedFunc(maps.Values(s.bundles), func(a, b B) int {
		return a.TrustDomain().Compare(b.TrustDomain())
	})
}

// Len returns the number of bundles in the set.
func (s *Set[B]) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.bundles)
}
