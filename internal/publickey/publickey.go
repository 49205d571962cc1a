// Package publickey compares public keys of any of the kinds crypto/x509
// parses: whether a certificate certifies a key, whether a server
// certified the key it was sent.
//
//	if !publickey.Equal(leaf.PublicKey, key.Public()) {
//		return errors.New("the key is not the leaf's")
//	}
package publickey

import "crypto"

// Equal reports whether a and b are the same public key: false when a is
// of a kind without an Equal method (every key type of the standard
// library has one), or nil.
func Equal(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
