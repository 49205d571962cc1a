package jwtutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"fmt"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// MinRSABits is RFC 7518 §3.3's minimum RSA key size for RS* and, by §3.5,
// PS*.
const MinRSABits = 2048

// allowed is the list of JWT rule 3 and WIT rule 3. It is an array so that it
// is built once and never shared with callers.
var allowed = [...]jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512,
	jose.ES256, jose.ES384, jose.ES512,
	jose.PS256, jose.PS384, jose.PS512,
}

// Algorithms returns the allowed signature algorithms in a new slice, for
// jwt.ParseSigned, which rejects every other alg before looking further into
// the token.
func Algorithms() []jose.SignatureAlgorithm {
	return slices.Clone(allowed[:])
}

// Allowed reports whether alg is one of the allowed signature algorithms. The
// comparison is exact: "es256" and "none" are not allowed.
func Allowed(alg string) bool {
	return slices.Contains(allowed[:], jose.SignatureAlgorithm(alg))
}

// CheckKeyFitsAlg rejects a public key that cannot honestly verify a
// signature made with alg (JWT rule 3): an RSA key of at least [MinRSABits]
// bits for RS* and PS*, an ECDSA key on P-256, P-384 or P-521 for ES256,
// ES384 or ES512. Only raw public keys are accepted, so no wrapper type can
// smuggle in another algorithm. role names the key in the error message, for
// example "JWT authority".
func CheckKeyFitsAlg(alg jose.SignatureAlgorithm, key crypto.PublicKey, role string) error {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		k, ok := key.(*rsa.PublicKey)
		if !ok || k == nil || k.N == nil {
			return fmt.Errorf("%s of type %T cannot verify %s tokens", role, key, alg)
		}
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("%s is a %d-bit RSA key; %s requires at least %d bits", role, n, alg, MinRSABits)
		}
		return nil
	case jose.ES256, jose.ES384, jose.ES512:
		k, ok := key.(*ecdsa.PublicKey)
		if !ok || k == nil || k.Curve == nil {
			return fmt.Errorf("%s of type %T cannot verify %s tokens", role, key, alg)
		}
		if want := curve(alg); k.Curve != want {
			return fmt.Errorf("%s on curve %s cannot verify %s tokens", role, k.Curve.Params().Name, alg)
		}
		return nil
	}
	return fmt.Errorf("unsupported token signature algorithm %q", alg)
}

// curve returns the curve of an ES* algorithm.
func curve(alg jose.SignatureAlgorithm) elliptic.Curve {
	switch alg {
	case jose.ES384:
		return elliptic.P384()
	case jose.ES512:
		return elliptic.P521() // ES512 is P-521, not "P-512"
	}
	return elliptic.P256()
}

// hashOf returns the hash of an allowed algorithm.
func hashOf(alg jose.SignatureAlgorithm) crypto.Hash {
	switch alg {
	case jose.RS384, jose.ES384, jose.PS384:
		return crypto.SHA384
	case jose.RS512, jose.ES512, jose.PS512:
		return crypto.SHA512
	}
	return crypto.SHA256
}
