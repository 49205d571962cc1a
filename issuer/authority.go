package issuer

import (
	"crypto/x509"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
)

// An Authority is the certificate authority of the trust domain, as the
// issuer uses it: the active signing authorities, the bundle that verifies
// what they sign, and a signal when any of these changes. The rotating CA
// manager implements it. A node agent, which signs nothing itself, passes
// an Authority whose X509Authority and JWTAuthority return nil and whose
// bundle comes from its server, with a Config.Signer.
//
// Implementations must be safe for concurrent use, and the getters must not
// block: the issuer calls them on every refresh.
type Authority interface {
	// X509Authority returns the X.509 CA that signs X509-SVIDs now, or nil
	// when there is none or it is not known here. The issuer re-mints the
	// SVIDs of other CAs when it changes (see Config.LazyRotation); nil
	// turns that off, and fails local signing.
	X509Authority() *ca.X509Authority

	// JWTAuthority returns the key that signs JWT-SVIDs now, or nil when
	// there is none or it is not known here. Cached JWT-SVIDs of another key
	// are not reused; nil fails local signing.
	JWTAuthority() *ca.JWTAuthority

	// Bundle returns the trust domain's bundle. The issuer does not modify
	// it.
	Bundle() *spiffebundle.Bundle

	// Subscribe returns a channel that receives a value after the bundle or
	// an active authority changes (capacity 1, never closed), and a function
	// that ends the subscription.
	Subscribe() (updates <-chan struct{}, unsubscribe func())
}

// A TaintReporter is an Authority that can name X.509 CAs whose SVIDs must
// be replaced early, for example because their key may have leaked. When
// the Authority is one, the issuer re-mints every SVID whose chain holds a
// tainted CA as soon as Subscribe signals a change.
type TaintReporter interface {
	// TaintedX509CAs returns the certificates of the tainted X.509 CAs.
	TaintedX509CAs() []*x509.Certificate
}

// An ActiveCAReporter is an Authority that signs nothing itself (its
// X509Authority returns nil, as in a node agent) but knows which X.509 CA
// signs now. Unless Config.LazyRotation is set, the issuer then replaces
// SVIDs signed by another CA as soon as the active one changes, as it does
// with a local CA.
type ActiveCAReporter interface {
	// ActiveX509CA returns the certificate of the CA that signs now, or
	// nil if it is not known.
	ActiveX509CA() *x509.Certificate
}
