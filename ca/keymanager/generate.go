package keymanager

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/spiffekit/spiffekit/ca"
)

// generateKey makes a private key of type alg.
func generateKey(alg ca.KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case ca.ECP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ca.ECP384:
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case ca.RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case ca.RSA4096:
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("keymanager: unsupported key algorithm %q", alg)
}
