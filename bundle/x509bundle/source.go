package x509bundle

import "github.com/spiffekit/spiffekit/spiffeid"

// Source is a source of X.509 bundles keyed by trust domain. Implementations
// must be safe for concurrent use and must not block.
type Source interface {
	// GetX509BundleForTrustDomain returns the X.509 bundle for the given trust
	// domain.
	GetX509BundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error)
}
