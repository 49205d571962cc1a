// Package pkcs11 keeps the signing keys of a certificate authority in a
// PKCS#11 token (an HSM, a smart card, SoftHSM): [KeyManager] implements
// [ca.KeyManager] and [ca.KeyDestroyer]. Keys are generated in the token as
// token objects that are sensitive and not extractable, so the private key
// never leaves it: every signature is made by the token. A key is found
// again, after a restart or from another process, by its label and ID
// (both the prefix and the key ID, see [Config.LabelPrefix]).
//
// # Usage
//
//	keys, err := pkcs11.Open(pkcs11.Config{
//		Module:     "/usr/lib/softhsm/libsofthsm2.so",
//		TokenLabel: "spiffekit-ca",
//		PIN:        pin,
//	})
//	defer keys.Close()
//	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td, KeyManager: keys, Journal: j})
//
// Open loads the token's library (a shared object, through cgo, with
// github.com/ThalesGroup/crypto11 over github.com/miekg/pkcs11) and logs
// in with the user PIN; a wrong PIN, an unknown token or a library that
// does not load fail there. A program built without cgo (CGO_ENABLED=0)
// has the package, but Open fails saying so.
//
// A key found under a key ID that can leave the token (CKA_EXTRACTABLE, or
// not CKA_SENSITIVE) is refused rather than used: such a key was not made
// by this package, and a CA key that can be copied is what the package is
// there to prevent.
package pkcs11
