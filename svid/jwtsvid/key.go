package jwtsvid

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// minRSABits is RFC 7518 §3.3's minimum RSA key size for RS* and, by §3.5,
// PS*.
const minRSABits = 2048

// checkKeyFitsAlg rejects a bundle key that cannot honestly verify a token
// signed with alg (JWT rule 3, JWT step S6): an RSA key never verifies an
// ES256 token, a P-256 key never verifies ES384. Only raw public keys are
// accepted, so no wrapper type can smuggle in another algorithm.
func checkKeyFitsAlg(alg jose.SignatureAlgorithm, key crypto.PublicKey) error {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, ok := key.(*rsa.PublicKey)
		if !ok || k == nil || k.N == nil {
			return fmt.Errorf("jwtsvid: JWT authority of type %T cannot verify %s tokens", key, alg)
		}
		if n := k.N.BitLen(); n < minRSABits {
			return fmt.Errorf("jwtsvid: JWT authority is a %d-bit RSA key; %s requires at least %d bits", n, alg, minRSABits)
		}
		return nil
	case jose.ES256, jose.ES384, jose.ES512:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k == nil || k.Curve == nil {
			return fmt.Errorf("jwtsvid: JWT authority of type %T cannot verify %s tokens", key, alg)
		}
		want := elliptic.P256()
		switch alg {
		case jose.ES384:
			want = elliptic.P384()
		case jose.ES512:
			want = elliptic.P521() // ES512 is P-521, not "P-512"
		}
		if k.Curve != want {
			return fmt.Errorf("jwtsvid: JWT authority on curve %s cannot verify %s tokens", k.Curve.Params().Name, alg)
		}
		return nil
	}
	return fmt.Errorf("jwtsvid: unsupported token signature algorithm %q", alg)
}
