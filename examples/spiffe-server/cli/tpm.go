package cli

import (
	"fmt"

	"github.com/spiffekit/spiffekit/attest/tpm"
)

// tpmKey is where the configuration file holds the tpm node attestor's
// settings. SPIRE's tpm_devid is another attestor (DevID certificates, tpmdevid.go),
// so the key is spiffekit's own.
const tpmKey = "node_attestors.tpm"

const tpmHelp = `the tpm node attestor (TPM 2.0 endorsement keys, credential activation):
{"ca_bundle_path": "<PEM file of TPM manufacturer CAs>", "ek_hashes": ["<hex SHA-256 of an
EK public key>"], "pcrs": [<PCR index>]}; at least one of ca_bundle_path and ek_hashes`

// tpmConfig is node_attestors.tpm of the configuration file.
type tpmConfig struct {
	// CABundlePath is a PEM file of the manufacturer CAs (roots and
	// intermediates) EK certificates chain to.
	CABundlePath string `json:"ca_bundle_path"`
	// EKHashes are TPMs trusted by their EK public key (tpm.EKHash).
	EKHashes []string `json:"ek_hashes"`
	// PCRs are the SHA-256 PCRs every node quotes, as selectors.
	PCRs []int `json:"pcrs"`
}

// newTPM returns the tpm node attestor c configures.
func newTPM(c *tpmConfig) (*tpm.Server, error) {
	if c.CABundlePath == "" && len(c.EKHashes) == 0 {
		return nil, usagef("%s: ca_bundle_path or ek_hashes is required", tpmKey)
	}
	fc := tpm.FileConfig{EKHashes: c.EKHashes, PCRs: c.PCRs}
	if c.CABundlePath != "" {
		fc.ManufacturerCABundles = []string{c.CABundlePath}
	}
	s, err := tpm.LoadServer(fc)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tpmKey, err) // tpm says "tpm: "
	}
	return s, nil
}
