package jwtutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"math/big"

	"github.com/go-jose/go-jose/v4"

	_ "crypto/sha256" // SHA-256 for RS256, ES256, PS256
	_ "crypto/sha512" // SHA-384 and SHA-512 for the other algorithms
)

// ErrInvalidSignature is returned by [VerifySignature] when the signature
// does not verify.
var ErrInvalidSignature = errors.New("invalid signature")

// VerifySignature verifies sig, a JWS signature in the form of RFC 7518 §3
// (R || S for ECDSA, PKCS #1 v1.5 or PSS with a salt as long as the hash for
// RSA), over message with key and alg. The key must fit alg (see
// [CheckKeyFitsAlg]); a signature that does not verify gives
// [ErrInvalidSignature].
func VerifySignature(alg jose.SignatureAlgorithm, key crypto.PublicKey, message, sig []byte) error {
	if err := CheckKeyFitsAlg(alg, key, "key"); err != nil {
		return err
	}
	h := hashOf(alg).New()
	h.Write(message)
	digest := h.Sum(nil)
	var ok bool
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		size := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) == 2*size {
			r := new(big.Int).SetBytes(sig[:size])
			s := new(big.Int).SetBytes(sig[size:])
			ok = ecdsa.Verify(k, digest, r, s)
		}
	case *rsa.PublicKey:
		switch alg {
		case jose.PS256, jose.PS384, jose.PS512:
			opts := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
			ok = rsa.VerifyPSS(k, hashOf(alg), digest, sig, opts) == nil
		default:
			ok = rsa.VerifyPKCS1v15(k, hashOf(alg), digest, sig) == nil
		}
	}
	if !ok {
		return ErrInvalidSignature
	}
	return nil
}
