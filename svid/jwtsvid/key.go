package jwtsvid

import (
	"crypto"
	"fmt"

	"github.com/go-jose/go-jose/v4"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

// checkKeyFitsAlg rejects a bundle key that cannot honestly verify a token
// signed with alg (JWT rule 3, JWT step S6): an RSA key never verifies an
// ES256 token, a P-256 key never verifies ES384.
func checkKeyFitsAlg(alg jose.SignatureAlgorithm, key crypto.PublicKey) error {
	if err := jwtutil.CheckKeyFitsAlg(alg, key, "JWT authority"); err != nil {
		return fmt.Errorf("jwtsvid: %w", err)
	}
	return nil
}
