package tpm

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// Type is the name of the tpm node attestor.
const Type = "tpm"

// NV indices of EK certificates, from the TCG EK Credential Profile: RSA
// 2048 (template L-1), ECC NIST P-256 (L-2) and ECC NIST P-384 (H-3), in
// the order the agent looks for them.
const (
	NVIndexRSAEKCert     = 0x01c00002
	NVIndexECCP256EKCert = 0x01c0000a
	NVIndexECCP384EKCert = 0x01c00016
)

// Persistent handles where EKs are kept (TCG provisioning guidance: the
// range 0x81010000-0x810100ff is the endorsement's).
const (
	ekHandleFirst = 0x81010000
	ekHandleLast  = 0x810100ff
)

// akTemplate is the attestation key's: a restricted ECDSA P-256 signing
// key, created as a primary key of the endorsement hierarchy. The TPM
// derives a primary key from its hierarchy's seed and the template, so
// the same TPM creates the same AK each time: the agent keeps no key blob.
var akTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Restricted:          true,
		SignEncrypt:         true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// EKHash returns the hash that identifies a TPM: the SHA-256 of its EK
// public key's PKIX (SubjectPublicKeyInfo) DER, in lower-case hexadecimal.
// It is in the agent ID and the ek_hash selector, and it is what
// [ServerConfig].EKHashes lists. `openssl x509 -pubkey -noout -in ek.pem |
// openssl pkey -pubin -outform DER | sha256sum` gives it from the EK
// certificate.
func EKHash(key any) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("tpm: EK public key: %w", err)
	}
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:]), nil
}

// audienceOf returns the ID a trust domain's servers are known by, which
// a challenge names and the proof covers.
func audienceOf(td spiffeid.TrustDomain) (spiffeid.ID, error) {
	return spiffeid.FromSegments(td, "spiffekit", "server")
}
