package authorities

import (
	"crypto/x509"
	"maps"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// A Source says what an issuer trusts: issuer.Trust, but for its signal.
// A Source that is also a ca.KeyTaintReporter names the tainted JWT and
// WIT keys too.
type Source interface {
	Bundle() *spiffebundle.Bundle
	ActiveX509CA() *x509.Certificate
	TaintedX509CAs() []*x509.Certificate
}

// Reading is what a Source said at one time.
type Reading struct {
	bundle                          *spiffebundle.Bundle
	active                          []byte
	tainted, taintedJWT, taintedWIT map[string]bool
}

// Read reads src. It takes no lock of the issuer's: a Source's getters do
// not block, but they are not the issuer's to hold its lock across.
func Read(src Source) Reading {
	r := Reading{bundle: src.Bundle(), tainted: make(map[string]bool),
		taintedJWT: make(map[string]bool), taintedWIT: make(map[string]bool)}
	if c := src.ActiveX509CA(); c != nil {
		r.active = c.Raw
	}
	for _, c := range src.TaintedX509CAs() {
		r.tainted[string(c.Raw)] = true
	}
	if k, ok := src.(ca.KeyTaintReporter); ok {
		for _, kid := range k.TaintedJWTKeyIDs() {
			r.taintedJWT[kid] = true
		}
		for _, kid := range k.TaintedWITKeyIDs() {
			r.taintedWIT[kid] = true
		}
	}
	return r
}

// State is what the issuer trusts now. The zero value trusts nothing. It
// is not safe for concurrent use: the issuer's lock guards it. Apply
// replaces its sets whole, never changes them: a set read under the lock
// may be used after it is released.
type State struct {
	// Bundle is the trust domain's bundle.
	Bundle *spiffebundle.Bundle
	// ActiveCA is the DER of the active X.509 CA's certificate, or nil
	// while that is not known.
	ActiveCA []byte
	// Tainted holds the DER of the tainted X.509 CAs' certificates.
	Tainted map[string]bool
	// TaintedJWT and TaintedWIT hold the kids of the tainted JWT and WIT
	// keys.
	TaintedJWT, TaintedWIT map[string]bool
	// Gen counts the changes of ActiveCA and Tainted.
	Gen uint64
}

// Changes says what Apply changed.
type Changes struct {
	// Bundle is set when the bundle was replaced.
	Bundle bool
	// TaintedJWT and TaintedWIT are set when those sets changed.
	TaintedJWT, TaintedWIT bool
}

// Apply takes r as what the issuer trusts now: its bundle only when it is
// one of trust domain td, and the rest as it is.
func (s *State) Apply(r Reading, td spiffeid.TrustDomain) Changes {
	var c Changes
	if r.bundle != nil && r.bundle.TrustDomain() == td {
		c.Bundle = r.bundle != s.Bundle
		s.Bundle = r.bundle
	}
	if string(r.active) != string(s.ActiveCA) || !maps.Equal(r.tainted, s.Tainted) {
		s.Gen++
	}
	s.ActiveCA, s.Tainted = r.active, r.tainted
	c.TaintedJWT, c.TaintedWIT = !maps.Equal(r.taintedJWT, s.TaintedJWT), !maps.Equal(r.taintedWIT, s.TaintedWIT)
	s.TaintedJWT, s.TaintedWIT = r.taintedJWT, r.taintedWIT
	return c
}

// Replaces reports whether an SVID signed by the CA whose certificate's
// DER is ca must be replaced: the CA is tainted, or, unless lazy, it is
// not the active one (while the active one is known).
func (s *State) Replaces(ca []byte, lazy bool) bool {
	if s.Tainted[string(ca)] {
		return true
	}
	return !lazy && s.ActiveCA != nil && string(ca) != string(s.ActiveCA)
}

// TrustsJWTKey reports whether the bundle holds the JWT key kid, and the
// key is not tainted.
func (s *State) TrustsJWTKey(kid string) bool {
	return s.Bundle.HasJWTAuthority(kid) && !s.TaintedJWT[kid]
}

// TrustsWITKey reports whether the bundle holds the WIT key kid, and the
// key is not tainted.
func (s *State) TrustsWITKey(kid string) bool {
	return s.Bundle.HasWITAuthority(kid) && !s.TaintedWIT[kid]
}
