package x509pop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// NonceSize is the size in bytes of the random nonce that begins the
// challenge the server sends.
const NonceSize = 32

// maxSignatureSize bounds the response: an RSA-16384 signature.
const maxSignatureSize = 2048

// maxAudience bounds the server ID a challenge names, as the SPIFFE ID
// standard bounds a SPIFFE ID (2048 bytes).
const maxAudience = 2048

// serverPath is the path of the SPIFFE ID every issuing server presents to
// its agents (nodeapi.ServerPath): the audience of a proof.
const serverPath = "/spiffekit/server"

// domain separates x509pop proofs from every other use of the node's key,
// and v2 proofs (bound to a trust domain and server) from v1 ones.
const domain = "spiffekit x509pop v2\x00"

// audienceOf returns the SPIFFE ID of the servers of td: the audience of
// the proofs made for them.
func audienceOf(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return spiffeid.FromPath(td, serverPath)
}

// marshalChallenge encodes a challenge: the nonce, then the server's
// SPIFFE ID as text.
func marshalChallenge(nonce []byte, audience spiffeid.ID) []byte {
	b := make([]byte, 0, len(nonce)+len(audience.String()))
	return append(append(b, nonce...), audience.String()...)
}

// parseChallenge splits a challenge made by marshalChallenge into its nonce
// and the server's SPIFFE ID.
func parseChallenge(b []byte) (nonce []byte, audience spiffeid.ID, err error) {
	switch {
	case len(b) < NonceSize:
		return nil, spiffeid.ID{}, fmt.Errorf("challenge of %d bytes is shorter than its %d-byte nonce", len(b), NonceSize)
	case len(b) == NonceSize:
		return nil, spiffeid.ID{}, errors.New("the challenge names no server (is the server older, speaking x509pop v1?)")
	case len(b) > NonceSize+maxAudience:
		return nil, spiffeid.ID{}, fmt.Errorf("challenge of %d bytes is larger than %d", len(b), NonceSize+maxAudience)
	}
	if audience, err = spiffeid.FromString(string(b[NonceSize:])); err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("the server ID the challenge names: %w", err)
	}
	return b[:NonceSize], audience, nil
}

// proofDigest returns the digest the agent signs: the nonce, the leaf, and
// the trust domain and server the proof is for, each field of variable
// length prefixed by its length.
func proofDigest(nonce []byte, leafHash [sha256.Size]byte, td spiffeid.TrustDomain, audience spiffeid.ID) []byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(nonce)
	h.Write(leafHash[:])
	for _, field := range []string{td.Name(), audience.String()} {
		h.Write(binary.BigEndian.AppendUint16(nil, uint16(len(field))))
		h.Write([]byte(field))
	}
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
