package jwkutil

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// CheckPublicKey reports whether key can be published as a JWT or WIT
// authority: it must not be nil and must not be a private key (anything with
// a Public method), so that a bundle can never leak private material.
func CheckPublicKey(key crypto.PublicKey) error {
	if key == nil {
		return errors.New("authority cannot be nil")
	}
	if _, ok := key.(interface{ Public() crypto.PublicKey }); ok {
		return fmt.Errorf("authority must be a public key; got %T", key)
	}
	return nil
}

// MarshalKey encodes one public key as a JWK. kid and use are omitted when
// empty. With cert, the key is cert's public key and "x5c" holds cert alone.
// It refuses private keys and key types go-jose cannot encode.
func MarshalKey(key crypto.PublicKey, kid, use string, cert *x509.Certificate) (json.RawMessage, error) {
	k := jose.JSONWebKey{Key: key, KeyID: kid, Use: use}
	if cert != nil {
		k.Key = cert.PublicKey
		k.Certificates = []*x509.Certificate{cert}
	}
	if err := CheckPublicKey(k.Key); err != nil {
		return nil, err
	}
	b, err := k.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// MarshalKeys encodes keys as JWKs sorted by key ID, each with the given use
// (omitted when empty), so that the output is deterministic.
func MarshalKeys(keys map[string]crypto.PublicKey, use string) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(keys))
	for _, kid := range slices.Sorted(maps.Keys(keys)) {
		b, err := MarshalKey(keys[kid], kid, use, nil)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", kid, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// KeysEqual reports whether a and b hold the same key IDs mapped to equal
// public keys. Keys are compared with their Equal method, which every public
// key type of the standard library has; keys without one compare unequal.
func KeysEqual(a, b map[string]crypto.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for kid, ka := range a {
		kb, ok := b[kid]
		if !ok || !keyEqual(ka, kb) {
			return false
		}
	}
	return true
}

func keyEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}
