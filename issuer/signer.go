package issuer

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// DefaultMaxBatch is the default of Config.MaxBatch.
const DefaultMaxBatch = 500

// A Signer has the SVIDs the issuer serves signed. An issuer with a local
// CA uses [NewLocalSigner]. A node agent, which holds no CA key, gives a
// Signer that has its server sign them instead, for example from CSRs.
//
// The issuer calls a Signer concurrently, never with a lock held, from the
// goroutines of its Run and from Workload API handlers; implementations
// must be safe for concurrent use. When Run returns, the ctx of the calls
// it made is cancelled and they are waited for.
//
// An error wrapping endpoint.ErrUnavailable means "try again later" (for
// example, the server is unreachable): the Workload API then answers
// Unavailable rather than Internal. The issuer retries failed X509-SVIDs on
// its own either way: a LocalSigner every second, any other Signer with
// jittered exponential backoff from 1s to 30s, and the SVID it should have
// replaced is served until it expires.
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

// A JWTKeyReporter is a Signer that knows which key signs JWT-SVIDs now,
// as a LocalSigner does. The issuer then reuses a cached JWT-SVID only
// while the key that signed it is still the active one. With any other
// Signer, whose active key the issuer cannot know, a JWT-SVID is reused
// until half its life whatever key signed it.
type JWTKeyReporter interface {
	Signer

	// ActiveJWTKeyID returns the key ID of the key that signs JWT-SVIDs
	// now, or "" while there is none.
	ActiveJWTKeyID() string
}

// LocalSigner signs SVIDs with the active authorities of a local CA: the
// Signer of an issuer that embeds its CA. It is safe for concurrent use.
type LocalSigner struct {
	a ca.Authority
}

var _ JWTKeyReporter = (*LocalSigner)(nil)

// NewLocalSigner returns a Signer that signs with the authorities a holds
// active at each call, such as the rotating CA manager of package
// ca/rotation. a must not be nil. Pair it with [TrustFromAuthority] of the
// same a.
func NewLocalSigner(a ca.Authority) *LocalSigner { return &LocalSigner{a: a} }

// SignX509SVIDs signs every request with the X.509 CA active at the call.
// It fails with an error wrapping endpoint.ErrUnavailable while the CA has
// no active X.509 authority.
func (s *LocalSigner) SignX509SVIDs(ctx context.Context, reqs []X509SVIDRequest) ([]X509SVIDResult, error) {
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

// SignJWTSVID signs with the JWT key active at the call. It fails with an
// error wrapping endpoint.ErrUnavailable while the CA has no active JWT
// key.
func (s *LocalSigner) SignJWTSVID(ctx context.Context, req JWTSVIDRequest) (string, error) {
	authority := s.a.JWTAuthority()
	if authority == nil {
		return "", fmt.Errorf("%w: no active JWT key", endpoint.ErrUnavailable)
	}
	return authority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: req.Entry.SPIFFEID, Audience: req.Audience, TTL: req.TTL})
}

// ActiveJWTKeyID returns the key ID of the CA's active JWT key, or "".
func (s *LocalSigner) ActiveJWTKeyID() string {
	if a := s.a.JWTAuthority(); a != nil {
		return a.KeyID()
	}
	return ""
}
