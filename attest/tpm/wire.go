package tpm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Wire format limits. An EK certificate is 1-2 KiB, a TPMT_PUBLIC at most
// a few hundred bytes (an RSA-4096 modulus is 512).
const (
	wireVersion   = 1
	maxCertSize   = 16 << 10
	maxPublicSize = 2 << 10
	// SecretSize is the size of the credential the server has the TPM
	// activate: a SHA-256 digest's, the largest a TPM2B_DIGEST of an EK
	// with a SHA-256 name algorithm holds.
	SecretSize = 32
	// NonceSize is the size of the nonce a quote is made over.
	NonceSize    = 32
	maxBlobSize  = 1 << 10
	maxQuoteSize = 4 << 10
	maxSigSize   = 1 << 10
	// MaxPCRs is the number of PCRs of a bank (0-23) a server may ask for.
	MaxPCRs = 24
)

// payloadMsg is the agent's first message.
type payloadMsg struct {
	Version int `json:"version"`
	// EKCert is the EK certificate's DER, as read from NV; empty if the
	// TPM has none.
	EKCert []byte `json:"ek_cert,omitempty"`
	// EKPublic and AKPublic are TPMT_PUBLIC structures, as the TPM
	// reports them.
	EKPublic []byte `json:"ek_public"`
	AKPublic []byte `json:"ak_public"`
}

// challengeMsg is the server's challenge.
type challengeMsg struct {
	Version int `json:"version"`
	// Audience is the ID of the server's trust domain's servers; the agent
	// answers only its own.
	Audience string `json:"audience"`
	// CredentialBlob and EncryptedSecret are TPM2_ActivateCredential's
	// arguments (TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET contents).
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
	// PCRs, when not empty, asks for a quote of these PCRs of the SHA-256
	// bank over Nonce.
	PCRs  []int  `json:"pcrs,omitempty"`
	Nonce []byte `json:"nonce,omitempty"`
}

// responseMsg is the agent's answer.
type responseMsg struct {
	// Proof is HMAC-SHA256 keyed by the activated credential over the
	// exchange (see proofOf).
	Proof []byte `json:"proof"`
	// Quote is a TPMS_ATTEST, Signature the TPMT_SIGNATURE the AK made
	// over it, PCRValues the values of the PCRs asked for, in the order
	// asked: present when the challenge asked for PCRs.
	Quote     []byte   `json:"quote,omitempty"`
	Signature []byte   `json:"signature,omitempty"`
	PCRValues [][]byte `json:"pcr_values,omitempty"`
}

// decodeJSON decodes b, at most attest.MaxNodePayload bytes, into v:
// exactly one JSON object, with no unknown field.
func decodeJSON(b []byte, v any, what string) error {
	if len(b) == 0 {
		return fmt.Errorf("%s is empty", what)
	}
	if len(b) > attest.MaxNodePayload {
		return fmt.Errorf("%s is larger than %d bytes", what, attest.MaxNodePayload)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s is not valid: %w", what, err)
	}
	if d.More() {
		return fmt.Errorf("%s has data after its JSON object", what)
	}
	return nil
}

// parsePublic decodes a TPMT_PUBLIC, which must be the whole of b and in
// canonical form (marshaling it again gives b), so that the name computed
// from it is the name of these exact bytes.
func parsePublic(b []byte, what string) (pub *tpm2.TPMTPublic, err error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("no %s", what)
	}
	if len(b) > maxPublicSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", what, maxPublicSize)
	}
	// The unmarshaler is reflection-driven; unmarshalCanonical keeps a
	// structure it cannot handle from taking the server down.
	if pub, err = unmarshalCanonical[tpm2.TPMTPublic](b); err != nil {
		return nil, fmt.Errorf("%s is not a TPMT_PUBLIC: %w", what, err)
	}
	return pub, nil
}

// proofOf is the agent's answer to a challenge: HMAC-SHA256 keyed by the
// activated credential over "spiffekit tpm v1" || 0x00 || len || trust
// domain name || len || audience || len || credential blob, each len a
// big-endian uint16 giving the length of the field after it. A relaying
// server of another trust domain gets a proof for its own trust domain,
// which ours refuses.
func proofOf(secret []byte, td spiffeid.TrustDomain, audience spiffeid.ID, blob []byte) []byte {
	return proofWithLabel(proofLabel, secret, td, audience, blob)
}

// proofLabel and devIDProofLabel keep the two attestors' proofs apart.
const (
	proofLabel      = "spiffekit tpm v1\x00"
	devIDProofLabel = "spiffekit tpm_devid v1\x00"
)

// proofWithLabel is proofOf with another label.
func proofWithLabel(label string, secret []byte, td spiffeid.TrustDomain, audience spiffeid.ID, blob []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	for _, f := range [][]byte{[]byte(td.Name()), []byte(audience.String()), blob} {
		m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(f))))
		m.Write(f)
	}
	return m.Sum(nil)
}

var errNoCert = errors.New("no EK certificate")
