package ca

import (
	"crypto/x509"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
)

// An Authority is a trust domain's certificate authority as the issuing
// side of spiffekit uses it: the authorities that sign now, the bundle that
// verifies what they signed, the CAs whose SVIDs must be replaced early,
// and a signal when any of these changes. The self-rotating CA of package
// ca/rotation implements it; so can a CA held elsewhere (an HSM-backed
// service, a test double with fixed keys).
//
// Implementations are safe for concurrent use, and the getters do not
// block: callers read them on every refresh, some on every request.
type Authority interface {
	// X509Authority returns the X.509 CA that signs X509-SVIDs now, or nil
	// while there is none (before the first CA is minted).
	X509Authority() *X509Authority

	// JWTAuthority returns the key that signs JWT-SVIDs now, or nil while
	// there is none.
	JWTAuthority() *JWTAuthority

	// Bundle returns the trust domain's bundle: every authority relying
	// parties must trust. Callers do not modify it.
	Bundle() *spiffebundle.Bundle

	// TaintedX509CAs returns the certificates of the X.509 CAs whose SVIDs
	// must be replaced early, for example because their key may have
	// leaked. Callers re-mint every SVID whose chain holds one.
	TaintedX509CAs() []*x509.Certificate

	// Subscribe returns a channel that receives a value after the bundle,
	// an active authority or the tainted set changes (capacity 1,
	// coalescing, never closed), and a function that ends the
	// subscription.
	Subscribe() (updates <-chan struct{}, unsubscribe func())
}

// A WITIssuer is an [Authority] that also signs WIT-SVIDs (an incubating
// standard), such as a ca/rotation manager configured with WIT keys. Its
// WIT keys are in the bundle with use "wit-svid" (WIT rule 16). Callers
// find it by type assertion.
type WITIssuer interface {
	// WITAuthority returns the key that signs WIT-SVIDs now, or nil while
	// there is none (or WIT-SVIDs are not enabled).
	WITAuthority() *WITAuthority
}

// A KeyTaintReporter is an [Authority] that also names its tainted JWT and
// WIT keys, such as a ca/rotation manager: an operator asked for the
// tokens they signed to be replaced early, for example because the key
// may have leaked. Callers that cache tokens drop those whose header kid
// is tainted, and sign anew with the active key. Its Subscribe signals a
// change of these too. Callers find it by type assertion.
type KeyTaintReporter interface {
	// TaintedJWTKeyIDs returns the kids of the tainted JWT keys.
	TaintedJWTKeyIDs() []string

	// TaintedWITKeyIDs returns the kids of the tainted WIT keys.
	TaintedWITKeyIDs() []string
}
