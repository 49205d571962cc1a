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
)

// ClientConfig configures [NewClient].
type ClientConfig struct {
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
}

var _ attest.NodeAttestorClient = (*Client)(nil)

// NewClient returns a client that presents c.Certificates and proves
// possession of c.Key. It fails if the chain is empty, too long or larger
// than [attest.MaxNodePayload], if the key is missing, of an unsupported
// type, or not the leaf's.
func NewClient(c ClientConfig) (*Client, error) {
	switch {
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
	return &Client{key: c.Key, payload: payload, leafHash: sha256.Sum256(leaf.Raw)}, nil
}

// LoadClient returns a client from PEM files: the CERTIFICATE blocks of
// certPath (leaf first) and the PKCS#8 PRIVATE KEY block of keyPath. The key
// file must not be accessible to group or others. Each file may hold at
// most 1 MiB.
func LoadClient(certPath, keyPath string) (*Client, error) {
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
	return NewClient(ClientConfig{Certificates: certs, Key: key})
}

// Type returns "x509pop".
func (c *Client) Type() string { return Type }

// Payload returns the certificate chain as concatenated DER.
func (c *Client) Payload(context.Context) ([]byte, error) {
	return append([]byte(nil), c.payload...), nil
}

// Respond signs the proof for nonce (see the package documentation). It
// refuses a challenge that is not [NonceSize] bytes long.
func (c *Client) Respond(_ context.Context, nonce []byte) ([]byte, error) {
	if len(nonce) != NonceSize {
		return nil, fmt.Errorf("x509pop: challenge of %d bytes, want %d", len(nonce), NonceSize)
	}
	sig, err := sign(c.key, proofDigest(nonce, c.leafHash))
	if err != nil {
		return nil, fmt.Errorf("x509pop: signing challenge: %w", err)
	}
	return sig, nil
}
