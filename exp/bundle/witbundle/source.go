package witbundle

import "github.com/spiffekit/spiffekit/spiffeid"

// Source is a source of WIT bundles keyed by trust domain. Implementations
// must be safe for concurrent use and must not block.
type Source interface {
	// GetWITBundleForTrustDomain returns the WIT bundle for the given trust
	// domain.
	GetWITBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error)
}
