package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// DefaultMaxBatch is the default of Config.MaxBatch.
const DefaultMaxBatch = 500

// A Signer has the SVIDs the issuer serves signed. By default (a nil
// Config.Signer) the issuer signs them itself with the active authorities
// of Config.Authority. A node agent, which holds no CA key, gives a Signer
// that has its server sign them instead, for example from CSRs.
//
// The issuer calls a Signer concurrently, never with a lock held, from its
// own goroutines and from Workload API handlers; implementations must be
// safe for concurrent use. Close cancels the ctx of the calls in flight and
// waits for them to return.
//
// An error wrapping endpoint.ErrUnavailable means "try again later" (for
// example, the server is unreachable): the Workload API then answers
// Unavailable rather than Internal. The issuer retries failed X509-SVIDs on
// its own either way.
type Signer interface {
	// SignX509SVIDs certifies the key of each request and returns one result
	// per request, in order: result i answers request i. An error fails the
	// whole batch; the failure of one request goes in its result's Err.
	SignX509SVIDs(ctx context.Context, reqs []X509SVIDRequest) ([]X509SVIDResult, error)

	// SignJWTSVID returns a JWT-SVID (a compact JWS) for req.
	SignJWTSVID(ctx context.Context, req JWTSVIDRequest) (string, error)
}

// X509SVIDRequest asks a Signer to certify the key of one X509-SVID.
type X509SVIDRequest struct {
	// Entry is the registration entry the SVID is for: its SPIFFE ID and DNS
	// names go in the certificate. The Signer must not modify it.
	Entry registry.Entry

	// Key is the SVID's private key, generated in memory by the issuer for
	// this request. The Signer certifies Key.Public(); it may use Key to sign
	// a certificate request (x509.CreateCertificateRequest), and must not keep
	// it.
	Key crypto.Signer

	// TTL is the lifetime the issuer asks for: Entry.X509SVIDTTL, else
	// Config.X509SVIDTTL. Zero means the Signer's default. The Signer may
	// shorten it.
	TTL time.Duration
}

// X509SVIDResult answers one X509SVIDRequest.
type X509SVIDResult struct {
	// Certificates is the SVID's chain: the leaf, which certifies the
	// request's key and carries the entry's SPIFFE ID, first, then the CA
	// that signed it, then any further intermediates. The issuer checks all
	// of this and serves the chain as given.
	Certificates []*x509.Certificate

	// Err, when not nil, says why this request failed; Certificates is then
	// ignored.
	Err error
}

// JWTSVIDRequest asks a Signer for one JWT-SVID.
type JWTSVIDRequest struct {
	// Entry is the registration entry the JWT-SVID is for: its SPIFFE ID is
	// the token's subject. The Signer must not modify it.
	Entry registry.Entry

	// Audience is the token's "aud", as the caller gave it (at least one
	// value). The Signer must not modify it.
	Audience []string

	// TTL is the lifetime the issuer asks for: Entry.JWTSVIDTTL, else
	// Config.JWTSVIDTTL. Zero means the Signer's default. The Signer may
	// shorten it.
	TTL time.Duration
}

// localSigner signs with the active authorities of an Authority: the
// embedded issuer's default Signer.
type localSigner struct{ a Authority }

var _ Signer = localSigner{}

// SignX509SVIDs signs every request with the X.509 CA active at the call.
func (s localSigner) SignX509SVIDs(ctx context.Context, reqs []X509SVIDRequest) ([]X509SVIDResult, error) {
	authority := s.a.X509Authority()
	if authority == nil {
		return nil, fmt.Errorf("%w: no active X.509 CA", endpoint.ErrUnavailable)
	}
	out := make([]X509SVIDResult, len(reqs))
	for k, r := range reqs {
		out[k].Certificates, out[k].Err = authority.SignX509SVID(ctx, ca.X509SVIDParams{
			PublicKey: r.Key.Public(),
			ID:        r.Entry.SPIFFEID,
			DNSNames:  r.Entry.DNSNames,
			TTL:       r.TTL,
		})
	}
	return out, nil
}

// SignJWTSVID signs with the JWT key active at the call.
func (s localSigner) SignJWTSVID(ctx context.Context, req JWTSVIDRequest) (string, error) {
	authority := s.a.JWTAuthority()
	if authority == nil {
		return "", fmt.Errorf("%w: no active JWT key", endpoint.ErrUnavailable)
	}
	return authority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: req.Entry.SPIFFEID, Audience: req.Audience, TTL: req.TTL})
}

// checkChain checks what a Signer returned for entry e and key before the
// issuer serves it: a Signer may be a remote server, and a chain for
// another key or identity would hand a workload an SVID it cannot use, or
// one it must not have.
func checkChain(e registry.Entry, key crypto.Signer, certs []*x509.Certificate, now time.Time) error {
	if len(certs) < 2 || len(certs) > x509svid.MaxChainLength {
		return fmt.Errorf("the signer returned %d certificates; want the leaf and its CA, at most %d", len(certs), x509svid.MaxChainLength)
	}
	for _, c := range certs {
		if c == nil {
			return errors.New("the signer returned a nil certificate")
		}
	}
	leaf := certs[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return fmt.Errorf("the signer returned a leaf without a SPIFFE ID: %w", err)
	}
	if id != e.SPIFFEID {
		return fmt.Errorf("the signer returned a leaf for %s, want %s", id, e.SPIFFEID)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("the signer returned a leaf for another key")
	}
	if leaf.IsCA {
		return errors.New("the signer returned a CA certificate as the leaf")
	}
	if err := leaf.CheckSignatureFrom(certs[1]); err != nil {
		return fmt.Errorf("the signer returned a leaf its second certificate did not sign: %w", err)
	}
	if !now.Before(leaf.NotAfter) {
		return fmt.Errorf("the signer returned a leaf that expired at %v", leaf.NotAfter)
	}
	return nil
}
