// Package tpm keeps the signing keys of a certificate authority in a TPM
// 2.0: [KeyManager] implements [ca.KeyManager] and [ca.KeyDestroyer] with
// github.com/google/go-tpm. Each key is created by the TPM under its
// storage root key (the owner hierarchy's primary key, made again from the
// TCG's ECC P-256 SRK template at each start, so the same on every start
// of the same TPM) with the attributes fixedTPM, fixedParent and
// sensitiveDataOrigin: it was generated inside the TPM and can be neither
// duplicated nor exported. Every signature is made by the TPM.
//
// What is kept on disk, one file per key ("<dir>/<id>.tpmkey", mode 0600,
// written atomically, in a directory of mode 0700), is the key's public
// area and its private area as the TPM returned it: encrypted and
// integrity-protected under the SRK, so that only the same TPM can load it.
// A copied file is worthless on another TPM ([KeyManager.Key] fails on it
// there), and a file whose key could leave its TPM is refused.
//
// # Usage
//
//	keys, err := tpm.Open(tpm.Config{Dir: "/var/lib/spiffe-server/tpm-keys"}) // /dev/tpmrm0
//	defer keys.Close()
//	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td, KeyManager: keys, Journal: j})
//
// [AgentKeys] keeps a node agent's own key (the key of its agent SVID) in
// the TPM the same way, for the KeyStore of package agent: the agent keeps
// the key's blob in its data directory, and the TPM makes every signature.
//
//	keys, err := tpm.OpenAgentKeys(tpm.AgentKeysConfig{}) // /dev/tpmrm0
//	defer keys.Close() // after the agent's
//	a, err := agent.New(ctx, agent.Config{KeyStore: keys, DataDir: dir, ...})
//
// The owner hierarchy must have an empty authorization value, as the TCG
// recommends for the SRK. A TPM signs a few hundred ECDSA signatures per
// second at most (a discrete TPM far fewer); see docs/PERFORMANCE.md for
// what that means for issuance.
package tpm
