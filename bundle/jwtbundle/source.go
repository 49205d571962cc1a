package jwtbundle

import "github.com/spiffekit/spiffekit/spiffeid"

// Source is a source of JWT bundles keyed by trust domain. Implementations
// must be safe for concurrent use and must not block.
type Source interface {
	// GetJWTBundleForTrustDomain returns the JWT bundle for the given trust
	// domain.
	GetJWTBundleForTrustDomain(trustDomain spiffeid.TrustDomain) (*Bundle, error)
}
