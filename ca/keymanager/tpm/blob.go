package tpm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// blobVersion is the version of the key file format.
const blobVersion = 1

// maxBlobSize bounds a key file; a TPM2B_PUBLIC of RSA-4096 and its
// TPM2B_PRIVATE are under 1.5 KiB, so is their JSON in base64.
const maxBlobSize = 16 << 10

// keyFile is the JSON document of a key file.
type keyFile struct {
	Version int `json:"version"`
	// Public is the key's TPMT_PUBLIC.
	Public []byte `json:"public"`
	// Private is the key's private area, as TPM2_Create returned it
	// (encrypted under the SRK).
	Private []byte `json:"private"`
}

// blob is a parsed key file.
type blob struct {
	public  tpm2.TPM2BPublic
	pub     *tpm2.TPMTPublic
	private tpm2.TPM2BPrivate
}

func encodeBlob(public tpm2.TPM2BPublic, private tpm2.TPM2BPrivate) ([]byte, error) {
	return json.Marshal(keyFile{Version: blobVersion, Public: public.Bytes(), Private: private.Buffer})
}

// parseBlob reads a key file and checks that its key is a signing key the
// TPM generated and keeps: fixedTPM, fixedParent, sensitiveDataOrigin,
// not restricted, ECC or RSA.
func parseBlob(data []byte) (*blob, error) {
	if len(data) > maxBlobSize {
		return nil, fmt.Errorf("key file of %d bytes, more than %d", len(data), maxBlobSize)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	switch {
	case f.Version != blobVersion:
		return nil, fmt.Errorf("key file of version %d, not %d", f.Version, blobVersion)
	case len(f.Public) == 0 || len(f.Private) == 0:
		return nil, errors.New("key file without its public or private area")
	}
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](f.Public)
	if err != nil {
		return nil, fmt.Errorf("key file: public area: %w", err)
	}
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	return &blob{public: tpm2.BytesAs2B[tpm2.TPMTPublic](f.Public), pub: pub, private: tpm2.TPM2BPrivate{Buffer: f.Private}}, nil
}

// checkPublic refuses a key that could leave the TPM or that is not an
// unrestricted ECC or RSA signing key.
func checkPublic(pub *tpm2.TPMTPublic) error {
	a := pub.ObjectAttributes
	switch {
	case !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin:
		return errors.New("the key in the key file can leave the TPM (not fixedTPM, fixedParent and sensitiveDataOrigin); refusing to use it")
	case !a.SignEncrypt || a.Restricted || a.Decrypt:
		return errors.New("the key in the key file is not an unrestricted signing key")
	case pub.Type != tpm2.TPMAlgECC && pub.Type != tpm2.TPMAlgRSA:
		return fmt.Errorf("the key in the key file is of type %#x, neither ECC nor RSA", uint16(pub.Type))
	}
	if _, err := tpm2.Pub(*pub); err != nil {
		return fmt.Errorf("key file: public key: %w", err)
	}
	return nil
}
