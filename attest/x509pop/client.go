package x509pop

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
	// TrustDomain is the trust domain of the servers the node attests to.
	// Required. The client answers only a challenge that names a server of
	// this trust domain, and its proof names both, so that a server of
	// another trust domain whose nodes use certificates of the same CA
	// cannot relay this node's proofs to ours.
	TrustDomain spiffeid.TrustDomain

	// Certificates is the node's certificate chain: the leaf first, then
	// any intermediates the server needs to reach its roots. Required; at
	// most [MaxChainLength] certificates.
	Certificates []*x509.Certificate

	// Key is the leaf's private key: ECDSA, RSA or Ed25519. Required.
	Key crypto.Signer
}

// Client is the agent side of x509pop attestation. It implements
// [attest.NodeAttestorClient] and is safe for concurrent use if its key is.
type Client struct {
	key      crypto.Signer
	payload  []byte
	leafHash [sha256.Size]byte
	td       spiffeid.TrustDomain
	audience spiffeid.ID // the servers of td
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client that presents c.Certificates and proves
// possession of c.Key to the servers of c.TrustDomain. It fails if the
// trust domain is missing, if the chain is empty, too long or larger than
// [attest.MaxNodePayload], if the key is missing, of an unsupported type,
// or not the leaf's.
func NewClient(c ClientConfig) (*Client, error) {
	switch {
	case c.TrustDomain.IsZero():
		return nil, errors.New("x509pop: no trust domain")
	case len(c.Certificates) == 0:
		return nil, errors.New("x509pop: no certificate")
	case len(c.Certificates) > MaxChainLength:
		return nil, fmt.Errorf("x509pop: chain of %d certificates is longer than %d", len(c.Certificates), MaxChainLength)
	case c.Key == nil:
		return nil, errors.New("x509pop: no private key")
	}
	for i, cert := range c.Certificates {
		if cert == nil {
			return nil, fmt.Errorf("x509pop: certificate %d is nil", i)
		}
	}
	leaf := c.Certificates[0]
	if err := checkKeyType(c.Key.Public()); err != nil {
		return nil, fmt.Errorf("x509pop: private key: %w", err)
	}
	pub, ok := c.Key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, errors.New("x509pop: private key does not match the leaf certificate")
	}
	payload := marshalPayload(c.Certificates)
	if len(payload) > attest.MaxNodePayload {
		return nil, fmt.Errorf("x509pop: chain of %d bytes is larger than %d", len(payload), attest.MaxNodePayload)
	}
	audience, err := audienceOf(c.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("x509pop: %w", err)
	}
	return &Client{key: c.Key, payload: payload, leafHash: sha256.Sum256(leaf.Raw), td: c.TrustDomain, audience: audience}, nil
}

// LoadClient returns a client of the servers of td from PEM files: the
// CERTIFICATE blocks of certPath (leaf first) and the PKCS#8 PRIVATE KEY
// block of keyPath. The key file must not be accessible to group or others.
// Each file may hold at most 1 MiB.
func LoadClient(td spiffeid.TrustDomain, certPath, keyPath string) (*Client, error) {
	b, err := atomicfile.Read(certPath, maxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("x509pop: reading certificates: %w", err)
	}
	certs, err := pemutil.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("x509pop: certificates %s: %w", certPath, err)
	}
	b, err = atomicfile.ReadPrivate(keyPath, maxPEMFile)
	if err != nil {
		return nil, fmt.Errorf("x509pop: reading private key: %w", err)
	}
	key, err := pemutil.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("x509pop: private key %s: %w", keyPath, err)
	}
	return NewClient(ClientConfig{TrustDomain: td, Certificates: certs, Key: key})
}

// Type returns "x509pop".
func (c *Client) Type() string { return Type }

// Payload returns the certificate chain as concatenated DER.
func (c *Client) Payload(context.Context) ([]byte, error) {
	return append([]byte(nil), c.payload...), nil
}

// Respond signs the proof for challenge (see the package documentation).
// It refuses a malformed challenge, and one that names another server than
// those of the client's trust domain: answering it would hand its server a
// proof for the server that made it, in another trust domain.
func (c *Client) Respond(_ context.Context, challenge []byte) ([]byte, error) {
	nonce, audience, err := parseChallenge(challenge)
	if err != nil {
		return nil, fmt.Errorf("x509pop: %w", err)
	}
	if audience != c.audience {
		return nil, fmt.Errorf("x509pop: the challenge is for %s, not for a server of trust domain %q: not answered "+
			"(a server of another trust domain relaying it would get this node admitted there)", audience, c.td.Name())
	}
	sig, err := sign(c.key, proofDigest(nonce, c.leafHash, c.td, audience))
	if err != nil {
		return nil, fmt.Errorf("x509pop: signing challenge: %w", err)
	}
	return sig, nil
}
