package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var errNilAuthorizer = errors.New("tlsconfig: authorizer is required")

// VerifyConnection returns a callback for tls.Config.VerifyConnection that
// verifies the peer's X509-SVID against bundle (see x509svid.Verify) and then
// asks authorizer. Unlike tls.Config.VerifyPeerCertificate, crypto/tls calls
// VerifyConnection on every handshake, resumed sessions included, so a peer
// that is no longer authorized, whose SVID has expired, or whose trust domain
// bundle has rotated is rejected even when it resumes a session. The configs
// built by this package use it.
//
// The callback verifies the certificates of tls.ConnectionState.PeerCertificates;
// it fails when there are none. It expects crypto/tls's own verification to
// be off (InsecureSkipVerify on clients, tls.RequireAnyClientCert on
// servers), since SPIFFE IDs are not host names. Errors from the bundle
// check carry the x509svid prefix; a rejection by authorizer is wrapped, so
// errors.Is finds the authorizer's error. A nil authorizer rejects every
// peer. No Option affects verification yet; opts is accepted for symmetry
// with the other functions.
//
// This function is an addition to the go-spiffe API.
func VerifyConnection(bundle x509bundle.Source, authorizer Authorizer, opts ...Option) func(tls.ConnectionState) error {
	v := &verifier{bundle: bundle, authorizer: authorizer}
	return v.verifyConnection
}

// VerifyPeerCertificate returns a callback for
// tls.Config.VerifyPeerCertificate that verifies the raw certificates the
// peer presented against bundle and then asks authorizer, as
// [VerifyConnection] does.
//
// crypto/tls does not call VerifyPeerCertificate on resumed sessions, so a
// config that relies on it alone must disable session resumption
// (SessionTicketsDisabled on servers, no ClientSessionCache on clients).
// Prefer [VerifyConnection], or the configs of this package, which use it.
func VerifyPeerCertificate(bundle x509bundle.Source, authorizer Authorizer, opts ...Option) func([][]byte, [][]*x509.Certificate) error {
	return WrapVerifyPeerCertificate(nil, bundle, authorizer, opts...)
}

// WrapVerifyPeerCertificate returns a tls.Config.VerifyPeerCertificate
// callback that verifies and authorizes the peer as [VerifyPeerCertificate]
// does and, if that succeeds and wrapped is not nil, then calls wrapped with
// the raw certificates and the chains verified against bundle.
//
// Clients must set InsecureSkipVerify, since a SPIFFE ID is not a host name.
// The callback does not run on resumed sessions: see [VerifyPeerCertificate].
// No Option affects verification yet; opts is accepted for compatibility.
func WrapVerifyPeerCertificate(wrapped func([][]byte, [][]*x509.Certificate) error, bundle x509bundle.Source, authorizer Authorizer, opts ...Option) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		id, certs, err := x509svid.ParseAndVerify(raw, bundle)
		if err != nil {
			return err
		}
		if err := authorize(authorizer, id, certs); err != nil {
			return err
		}
		if wrapped != nil {
			return wrapped(raw, certs)
		}
		return nil
	}
}

// verifier is the VerifyConnection callback the configs install. next and
// nextConn are the VerifyPeerCertificate and VerifyConnection callbacks that
// were on the config before, run after SPIFFE authentication succeeded.
type verifier struct {
	bundle     x509bundle.Source
	authorizer Authorizer
	next       func([][]byte, [][]*x509.Certificate) error
	nextConn   func(tls.ConnectionState) error
}

func (v *verifier) verifyConnection(cs tls.ConnectionState) error {
	id, chains, err := x509svid.Verify(cs.PeerCertificates, v.bundle)
	if err != nil {
		return err
	}
	if err := authorize(v.authorizer, id, chains); err != nil {
		return err
	}
	if v.next != nil {
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, c := range cs.PeerCertificates {
			raw[i] = c.Raw
		}
		if err := v.next(raw, chains); err != nil {
			return err
		}
	}
	if v.nextConn != nil {
		// crypto/tls verified nothing itself; hand on the SPIFFE chains.
		cs.VerifiedChains = chains
		return v.nextConn(cs)
	}
	return nil
}

func authorize(authorizer Authorizer, id spiffeid.ID, chains [][]*x509.Certificate) error {
	if authorizer == nil {
		return errNilAuthorizer
	}
	if err := authorizer(id, chains); err != nil {
		return fmt.Errorf("tlsconfig: peer %q is not authorized: %w", id, err)
	}
	return nil
}
