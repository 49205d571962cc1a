package x509pop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// NonceSize is the size in bytes of the challenge the server sends.
const NonceSize = 32

// maxSignatureSize bounds the response: an RSA-16384 signature.
const maxSignatureSize = 2048

// domain separates x509pop proofs from every other use of the node's key.
const domain = "spiffekit x509pop v1\x00"

// proofDigest returns the digest the agent signs.
func proofDigest(nonce []byte, leafHash [sha256.Size]byte) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(nonce)
	h.Write(leafHash[:])
	return h.Sum(nil)
}

// checkKeyType reports whether the protocol supports pub.
func checkKeyType(pub crypto.PublicKey) error {
	switch pub.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
		return nil
	}
	return fmt.Errorf("unsupported key type %T", pub)
}

// sign signs digest with key in the scheme its type calls for.
func sign(key crypto.Signer, digest []byte) ([]byte, error) {
	var opts crypto.SignerOpts
	switch key.Public().(type) {
	case *ecdsa.PublicKey:
		opts = crypto.SHA256
	case *rsa.PublicKey:
		opts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256}
	case ed25519.PublicKey:
		opts = crypto.Hash(0)
	default:
		return nil, fmt.Errorf("unsupported key type %T", key.Public())
	}
	return key.Sign(rand.Reader, digest, opts)
}

// verify checks sig over digest with pub.
func verify(pub crypto.PublicKey, digest, sig []byte) error {
	ok := false
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(pub, digest, sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPSS(pub, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(pub, digest, sig)
	}
	if !ok {
		return errors.New("signature does not verify with the leaf's key")
	}
	return nil
}
