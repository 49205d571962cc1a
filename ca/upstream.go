package ca

import (
	"context"
	"crypto"
	"crypto/x509"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// X509CARequest asks an [UpstreamAuthority] for the signing certificate of a
// new X.509 CA of the trust domain.
type X509CARequest struct {
	// CSR is a DER PKCS#10 request signed by the new CA key, carrying the
	// URI SAN spiffe://<trust domain>.
	CSR []byte

	// PublicKey is the public key in CSR, for authorities that sign keys
	// rather than requests.
	PublicKey crypto.PublicKey

	// TrustDomain is the trust domain of the new CA.
	TrustDomain spiffeid.TrustDomain

	// TTL is the requested lifetime; the upstream authority may grant less.
	TTL time.Duration
}

// X509CAResponse is what an [UpstreamAuthority] answers.
type X509CAResponse struct {
	// Chain is the new CA certificate first, then the intermediates above
	// it. Certificates that are also in Roots may be included; they are
	// left out of the chains the CA hands to workloads.
	Chain []*x509.Certificate

	// Roots are the trust anchors that verify Chain. They, not the new CA
	// certificate, go into the trust bundle.
	Roots []*x509.Certificate
}

// An UpstreamAuthority signs the X.509 CA certificates of a rotating CA
// (package ca/rotation), so that the trust domain chains to an existing PKI:
// the bundle then holds the upstream roots and each rotated CA is an
// intermediate. It must be safe for concurrent use. Package ca/upstream has
// an implementation backed by a CA certificate and key on disk, package
// ca/upstream/vault one backed by the PKI engine of Vault or OpenBao.
type UpstreamAuthority interface {
	// MintX509CA signs a CA certificate for req.
	MintX509CA(ctx context.Context, req X509CARequest) (X509CAResponse, error)
}

// An UpstreamJWTPublisher is an [UpstreamAuthority] of the same trust
// domain, another issuing server, that also takes the JWT keys this server
// signs with into the trust domain's bundle, so that JWT-SVIDs signed here
// validate everywhere, and answers with that bundle. Package
// ca/upstream/nested has one.
type UpstreamJWTPublisher interface {
	UpstreamAuthority

	// PublishJWTKeys replaces the keys this server published before by
	// keys, by key ID, and returns the upstream trust domain bundle.
	PublishJWTKeys(ctx context.Context, keys map[string]crypto.PublicKey) (*spiffebundle.Bundle, error)
}
