package keymanager

import (
	"context"
	"crypto"
	"fmt"

	"github.com/spiffekit/spiffekit/ca"
)

// newKey makes a private key of type alg for a GenerateKey call with ctx
// and id: the common start of every GenerateKey.
func newKey(ctx context.Context, id string, alg ca.KeyAlgorithm) (crypto.Signer, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("keymanager: %w", err)
	}
	if err := validateKeyID(id); err != nil {
		return nil, err
	}
	return generateKey(alg)
}

// validateKeyID checks id with ca.ValidateKeyID and gives the error this
// package's prefix.
func validateKeyID(id string) error {
	if err := ca.ValidateKeyID(id); err != nil {
		return fmt.Errorf("keymanager: %w", err)
	}
	return nil
}
