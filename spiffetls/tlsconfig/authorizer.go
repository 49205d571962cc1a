package tlsconfig

import (
	"crypto/x509"
	"errors"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Authorizer authorizes a peer's X509-SVID once it has been verified. id is
// the peer's SPIFFE ID and verifiedChains are the chains built from the
// peer's X509-SVID back to an X.509 root in the bundle of id's trust domain,
// leaf first. A non-nil error rejects the peer and fails the handshake.
//
// An Authorizer is called from TLS handshakes, possibly concurrently; it must
// be safe for concurrent use and should not block.
type Authorizer func(id spiffeid.ID, verifiedChains [][]*x509.Certificate) error

// AuthorizeAny returns an Authorizer that allows any SPIFFE ID. The peer must
// still present an X509-SVID that verifies against the bundle source.
func AuthorizeAny() Authorizer {
	return AdaptMatcher(spiffeid.MatchAny())
}

// AuthorizeID returns an Authorizer that allows exactly the given SPIFFE ID.
func AuthorizeID(allowed spiffeid.ID) Authorizer {
	return AdaptMatcher(spiffeid.MatchID(allowed))
}

// AuthorizeIDPrefix returns an Authorizer that allows the given ID and every
// ID below it: same trust domain, and a path equal to the prefix's path or
// extending it at a segment boundary ("/a" allows "/a" and "/a/b", not
// "/ab"). A prefix without a path allows nothing.
func AuthorizeIDPrefix(allowed spiffeid.ID) Authorizer {
	return AdaptMatcher(spiffeid.MatchIDPrefix(allowed))
}

// AuthorizeOneOf returns an Authorizer that allows any of the given SPIFFE
// IDs. With no IDs it allows nothing.
func AuthorizeOneOf(allowed ...spiffeid.ID) Authorizer {
	return AdaptMatcher(spiffeid.MatchOneOf(allowed...))
}

// AuthorizeMemberOf returns an Authorizer that allows any SPIFFE ID in the
// given trust domain.
func AuthorizeMemberOf(allowed spiffeid.TrustDomain) Authorizer {
	return AdaptMatcher(spiffeid.MatchMemberOf(allowed))
}

// AdaptMatcher turns a spiffeid.Matcher into an Authorizer that decides on
// the SPIFFE ID alone and ignores the verified chains. A nil matcher gives an
// Authorizer that rejects every peer.
func AdaptMatcher(matcher spiffeid.Matcher) Authorizer {
	return func(id spiffeid.ID, _ [][]*x509.Certificate) error {
		if matcher == nil {
			return errors.New("tlsconfig: matcher is required")
		}
		return matcher(id)
	}
}
