// Package keymanager holds the signing keys of a certificate authority: two
// implementations of [ca.KeyManager] and [ca.KeyDestroyer], one in memory
// ([Memory]) and one with a file per key ([Disk]). Keys that cannot be
// copied live in an HSM (package ca/keymanager/pkcs11) or a TPM (package
// ca/keymanager/tpm), which implement the same two interfaces.
//
// # Usage
//
//	keys, err := keymanager.NewDisk("/var/lib/ca/keys") // mode 0700
//	signer, err := keys.GenerateKey(ctx, "x509-1", ca.ECP256)
//	// Later, in the same or another process:
//	signer, err = keys.Key(ctx, "x509-1")
//	err = keys.DestroyKey(ctx, "x509-1")
//
//	// Keys that die with the process, for tests and short-lived trust domains:
//	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td, KeyManager: keymanager.NewMemory()})
//
// Key IDs must pass [ca.ValidateKeyID]; lookups of unknown IDs fail with
// errors wrapping [ca.ErrKeyNotFound], and reusing an ID fails with
// [ca.ErrKeyExists].
package keymanager
