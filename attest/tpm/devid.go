package tpm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// DevIDType is the name of the tpm_devid node attestor, SPIRE's name for
// it.
const DevIDType = "tpm_devid"

// maxDevIDChain bounds the DevID certificate and the intermediates sent
// with it.
const maxDevIDChain = 8

// devIDPayloadMsg is a tpm_devid agent's first message.
type devIDPayloadMsg struct {
	Version int `json:"version"`
	// DevIDCerts is the DevID certificate's DER, then the DER of
	// intermediate CA certificates that may help chain it.
	DevIDCerts [][]byte `json:"devid_certs"`
	// DevIDPublic, EKPublic and AKPublic are TPMT_PUBLIC structures.
	DevIDPublic []byte `json:"devid_public"`
	EKCert      []byte `json:"ek_cert"`
	EKPublic    []byte `json:"ek_public"`
	AKPublic    []byte `json:"ak_public"`
}

// devIDChallengeMsg is the server's challenge to a tpm_devid agent.
type devIDChallengeMsg struct {
	Version  int    `json:"version"`
	Audience string `json:"audience"`
	// CredentialBlob and EncryptedSecret are a credential for the AK,
	// encrypted to the EK, as in challengeMsg.
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
	// Nonce is what the AK's certification of the DevID key and the
	// DevID key's signature are made over.
	Nonce []byte `json:"nonce"`
}

// devIDResponseMsg is a tpm_devid agent's answer.
type devIDResponseMsg struct {
	// Proof is the HMAC keyed by the activated credential, as in
	// responseMsg, with the tpm_devid label.
	Proof []byte `json:"proof"`
	// CertifyInfo is the TPMS_ATTEST of TPM2_Certify of the DevID key by
	// the AK over the nonce, CertifySignature the AK's TPMT_SIGNATURE of
	// it.
	CertifyInfo      []byte `json:"certify_info"`
	CertifySignature []byte `json:"certify_signature"`
	// DevIDSignature is the DevID key's TPMT_SIGNATURE of devIDSigned.
	DevIDSignature []byte `json:"devid_signature"`
}

// devIDSigned is what the DevID key signs to prove its possession:
// "spiffekit tpm_devid signature v1" || 0x00 || len || trust domain name
// || len || audience || len || nonce, each len a big-endian uint16 giving
// the length of the field after it. The name of the server it is for and
// its nonce keep it from serving another exchange or another server.
func devIDSigned(td spiffeid.TrustDomain, audience spiffeid.ID, nonce []byte) []byte {
	b := []byte("spiffekit tpm_devid signature v1\x00")
	for _, f := range [][]byte{[]byte(td.Name()), []byte(audience.String()), nonce} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(f)))
		b = append(b, f...)
	}
	return b
}

// checkDevIDPublic checks a DevID key's public area: a signing key made
// in its TPM and fixed to it (it can neither have come from outside nor
// leave it), named with SHA-256 or a stronger hash, whose key is RSA or
// ECC as publicKey accepts. It returns the key.
func checkDevIDPublic(pub *tpm2.TPMTPublic) (any, error) {
	key, err := publicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("DevID key: %w", err)
	}
	if a := pub.ObjectAttributes; !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.SignEncrypt {
		return nil, errors.New("DevID key is not a signing key generated in and fixed to its TPM " +
			"(fixedTPM, fixedParent, sensitiveDataOrigin and sign): a copy of it may live outside the TPM")
	}
	switch pub.NameAlg {
	case tpm2.TPMAlgSHA256, tpm2.TPMAlgSHA384, tpm2.TPMAlgSHA512:
	default:
		return nil, fmt.Errorf("DevID key name algorithm %#x is not SHA-256, SHA-384 or SHA-512", uint16(pub.NameAlg))
	}
	return key, nil
}

// devIDScheme returns the scheme the DevID key signs with: its own, or,
// when it has none, RSASSA or ECDSA with SHA-256. The second result is
// the scheme to ask TPM2_Sign for (null when the key has its own).
func devIDScheme(pub *tpm2.TPMTPublic) (scheme, hash tpm2.TPMAlgID, in tpm2.TPMTSigScheme, err error) {
	var alg tpm2.TPMAlgID
	var details tpm2.TPMUAsymScheme
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return 0, 0, in, err
		}
		alg, details = parms.Scheme.Scheme, parms.Scheme.Details
		if alg == tpm2.TPMAlgNull {
			alg = tpm2.TPMAlgRSASSA
		}
	case tpm2.TPMAlgECC:
		parms, err := pub.Parameters.ECCDetail()
		if err != nil {
			return 0, 0, in, err
		}
		alg, details = parms.Scheme.Scheme, parms.Scheme.Details
		if alg == tpm2.TPMAlgNull {
			alg = tpm2.TPMAlgECDSA
		}
	default:
		return 0, 0, in, fmt.Errorf("DevID key of type %#x", uint16(pub.Type))
	}
	var own tpm2.TPMIAlgHash
	switch alg {
	case tpm2.TPMAlgRSASSA:
		if d, err := details.RSASSA(); err == nil {
			own = d.HashAlg
		}
	case tpm2.TPMAlgRSAPSS:
		if d, err := details.RSAPSS(); err == nil {
			own = d.HashAlg
		}
	case tpm2.TPMAlgECDSA:
		if d, err := details.ECDSA(); err == nil {
			own = d.HashAlg
		}
	default:
		return 0, 0, in, fmt.Errorf("DevID key signs with scheme %#x, not RSASSA, RSAPSS or ECDSA", uint16(alg))
	}
	if own != 0 && own != tpm2.TPMAlgNull {
		return alg, own, tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull}, nil
	}
	in = tpm2.TPMTSigScheme{Scheme: alg, Details: tpm2.NewTPMUSigScheme(alg, &tpm2.TPMSSchemeHash{HashAlg: tpm2.TPMAlgSHA256})}
	return alg, tpm2.TPMAlgSHA256, in, nil
}

// cryptoHash maps a TPM hash algorithm the DevID key may sign with to
// Go's.
func cryptoHash(alg tpm2.TPMAlgID) (crypto.Hash, error) {
	switch alg {
	case tpm2.TPMAlgSHA256:
		return crypto.SHA256, nil
	case tpm2.TPMAlgSHA384:
		return crypto.SHA384, nil
	case tpm2.TPMAlgSHA512:
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("hash %#x is not SHA-256, SHA-384 or SHA-512", uint16(alg))
}

// verifyDevIDSignature verifies the DevID key's signature of msg: RSASSA,
// RSAPSS or ECDSA, with SHA-256, SHA-384 or SHA-512, by key.
func verifyDevIDSignature(key any, msg []byte, sig *tpm2.TPMTSignature) error {
	var hashAlg tpm2.TPMAlgID
	var verify func(h crypto.Hash, digest []byte) bool
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if sig.SigAlg != tpm2.TPMAlgECDSA {
			return fmt.Errorf("signature algorithm %#x for an ECC key", uint16(sig.SigAlg))
		}
		e, err := sig.Signature.ECDSA()
		if err != nil {
			return err
		}
		hashAlg = e.Hash
		r, s := new(big.Int).SetBytes(e.SignatureR.Buffer), new(big.Int).SetBytes(e.SignatureS.Buffer)
		verify = func(_ crypto.Hash, digest []byte) bool { return ecdsa.Verify(k, digest, r, s) }
	case *rsa.PublicKey:
		var r *tpm2.TPMSSignatureRSA
		var err error
		switch sig.SigAlg {
		case tpm2.TPMAlgRSASSA:
			r, err = sig.Signature.RSASSA()
			verify = func(h crypto.Hash, digest []byte) bool { return rsa.VerifyPKCS1v15(k, h, digest, r.Sig.Buffer) == nil }
		case tpm2.TPMAlgRSAPSS:
			r, err = sig.Signature.RSAPSS()
			verify = func(h crypto.Hash, digest []byte) bool {
				return rsa.VerifyPSS(k, h, digest, r.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
			}
		default:
			return fmt.Errorf("signature algorithm %#x for an RSA key", uint16(sig.SigAlg))
		}
		if err != nil {
			return err
		}
		hashAlg = r.Hash
	default:
		return errors.New("DevID key of an unsupported type")
	}
	h, err := cryptoHash(hashAlg)
	if err != nil {
		return fmt.Errorf("signature %w", err)
	}
	d := h.New()
	d.Write(msg)
	if !verify(h, d.Sum(nil)) {
		return errors.New("signature does not verify with the DevID certificate's key")
	}
	return nil
}

// DevIDFingerprint returns what identifies a DevID certificate in the
// tpm_devid agent ID and selectors: the SHA-1 of its DER, in lower-case
// hexadecimal, as SPIRE's tpm_devid has it, so that registration entries
// carry over. It names a certificate that has been verified; it is not
// what makes it trusted.
func DevIDFingerprint(c *x509.Certificate) string {
	h := sha1.Sum(c.Raw)
	return hex.EncodeToString(h[:])
}

// trimTPM2B returns the contents of b if b is a TPM2B (a big-endian
// uint16 size, then exactly that many bytes), as tpm2-tools writes key
// files, and b itself otherwise.
func trimTPM2B(b []byte) []byte {
	if len(b) >= 2 && int(binary.BigEndian.Uint16(b)) == len(b)-2 {
		return b[2:]
	}
	return b
}
