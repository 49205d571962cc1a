package spiffebundle

import "github.com/spiffekit/spiffekit/spiffeid"

// Source is a source of SPIFFE bundles keyed by trust domain. Implementations
// must be safe for concurrent use and must not block.
type Source interface {
	// GetBundleForTrustDomain returns the SPIFFE bundle for the given trust
	// domain.
	GetBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error)
}
