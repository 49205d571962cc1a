package testca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"testing"
)

// SignJWT returns a JWS compact serialization of claims signed with key
// according to header["alg"]. header and claims are encoded with
// encoding/json as given, so a test can build any header (extra parameters,
// wrong typ, no kid) and any payload (a JSON array, exp as a string). claims
// may be a []byte, which is used as the raw payload.
//
// The key must fit the algorithm: *ecdsa.PrivateKey for ES256/384/512 (the
// signature size follows the key's curve, so a P-384 key signing "ES256"
// gives a mismatched token), *rsa.PrivateKey for RS* and PS*,
// ed25519.PrivateKey for EdDSA, []byte for HS256/384/512. For "none" and any
// other value of alg the signature is empty.
func SignJWT(tb testing.TB, key any, header map[string]any, claims any) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatalf("testca: marshal header: %v", err)
	}
	payload, ok := claims.([]byte)
	if !ok {
		if payload, err = json.Marshal(claims); err != nil {
			tb.Fatalf("testca: marshal claims: %v", err)
		}
	}
	input := b64(h) + "." + b64(payload)
	alg, _ := header["alg"].(string)
	sig, err := signJWS(alg, key, []byte(input))
	if err != nil {
		tb.Fatalf("testca: sign %s: %v", alg, err)
	}
	return input + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func signJWS(alg string, key any, input []byte) ([]byte, error) {
	var newHash func() hash.Hash
	var ch crypto.Hash
	switch alg {
	case "RS256", "PS256", "ES256", "HS256":
		newHash, ch = sha256.New, crypto.SHA256
	case "RS384", "PS384", "ES384", "HS384":
		newHash, ch = sha512.New384, crypto.SHA384
	case "RS512", "PS512", "ES512", "HS512":
		newHash, ch = sha512.New, crypto.SHA512
	case "EdDSA":
		k, err := keyAs[ed25519.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		return ed25519.Sign(k, input), nil
	default:
		return nil, nil
	}
	h := newHash()
	h.Write(input)
	digest := h.Sum(nil)
	switch alg[:2] {
	case "HS":
		k, err := keyAs[[]byte](key)
		if err != nil {
			return nil, err
		}
		m := hmac.New(newHash, k)
		m.Write(input)
		return m.Sum(nil), nil
	case "RS", "PS":
		k, err := keyAs[*rsa.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		if alg[0] == 'R' {
			return rsa.SignPKCS1v15(rand.Reader, k, ch, digest)
		}
		return rsa.SignPSS(rand.Reader, k, ch, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	default: // ES
		k, err := keyAs[*ecdsa.PrivateKey](key)
		if err != nil {
			return nil, err
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out, nil
	}
}

func keyAs[K any](key any) (K, error) {
	k, ok := key.(K)
	if !ok {
		return k, fmt.Errorf("key of type %T does not fit, want %T", key, k)
	}
	return k, nil
}
