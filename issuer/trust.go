package issuer

import (
	"crypto/x509"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
)

// Trust is what every issuer knows of its trust domain's authorities,
// whether it signs itself or has a server sign for it: the bundle it hands
// to callers, the X.509 CA that signs now, the CAs whose SVIDs must be
// replaced early, and a signal when any of these changes. A local CA gives
// it through [TrustFromAuthority]; a node agent keeps it from what its
// server sends.
//
// Implementations are safe for concurrent use, and the getters do not
// block: the issuer reads them after every signal.
//
// A Trust that is also a ca.KeyTaintReporter names the tainted JWT and
// WIT keys too, and Subscribe signals their changes: the issuer then
// drops the JWT-SVIDs and WIT-SVIDs they signed, serves none of them
// again, and has new ones signed when they are next asked for (open
// FetchWITSVID streams get theirs at once).
type Trust interface {
	// Bundle returns the trust domain's bundle, which the issuer serves
	// to every caller; its trust domain is the issuer's. The issuer does
	// not modify it.
	Bundle() *spiffebundle.Bundle

	// ActiveX509CA returns the certificate of the X.509 CA that signs
	// X509-SVIDs now, or nil while that is not known (a node agent before
	// its server said). Unless Config.LazyRotation is set, the issuer
	// re-mints the SVIDs of other CAs as soon as it changes.
	ActiveX509CA() *x509.Certificate

	// TaintedX509CAs returns the certificates of the X.509 CAs whose SVIDs
	// must be replaced early, for example because their key may have
	// leaked. The issuer re-mints every SVID whose chain holds one as soon
	// as Subscribe signals the change, LazyRotation or not.
	TaintedX509CAs() []*x509.Certificate

	// Subscribe returns a channel that receives a value after the bundle,
	// the active CA or the tainted set changes (capacity 1, coalescing,
	// never closed), and a function that ends the subscription.
	Subscribe() (updates <-chan struct{}, unsubscribe func())
}

// TrustFromAuthority returns the Trust of a local CA: the bundle, active
// X.509 CA and tainted CAs of a, a ca.Authority such as the rotating CA
// manager of package ca/rotation, and its tainted JWT and WIT keys when a
// is a ca.KeyTaintReporter. Pair it with [NewLocalSigner] of the same a.
func TrustFromAuthority(a ca.Authority) Trust { return authorityTrust{a} }

// authorityTrust is the Trust of TrustFromAuthority.
type authorityTrust struct{ ca.Authority }

var _ ca.KeyTaintReporter = authorityTrust{}

// TaintedJWTKeyIDs returns the authority's tainted JWT keys, or none when
// it does not say.
func (t authorityTrust) TaintedJWTKeyIDs() []string {
	if r, ok := t.Authority.(ca.KeyTaintReporter); ok {
		return r.TaintedJWTKeyIDs()
	}
	return nil
}

// TaintedWITKeyIDs returns the authority's tainted WIT keys, or none when
// it does not say.
func (t authorityTrust) TaintedWITKeyIDs() []string {
	if r, ok := t.Authority.(ca.KeyTaintReporter); ok {
		return r.TaintedWITKeyIDs()
	}
	return nil
}

// ActiveX509CA returns the certificate of the authority's active X.509
// CA, or nil while it has none.
func (t authorityTrust) ActiveX509CA() *x509.Certificate {
	if a := t.X509Authority(); a != nil {
		return a.Certificate()
	}
	return nil
}
