package cli

import (
	"fmt"

	"github.com/spiffekit/spiffekit/attest/tpm"
)

// tpmDevIDKey is where the configuration file holds the tpm_devid node
// attestor's settings, with the keys of SPIRE's plugin_data.
const tpmDevIDKey = "node_attestors.tpm_devid"

const tpmDevIDHelp = `the tpm_devid node attestor (DevID certificates of keys held in a TPM 2.0), SPIRE's:
{"devid_ca_path": "<PEM file of DevID CAs>", "endorsement_ca_path": "<PEM file of TPM manufacturer CAs>"}; both required`

// tpmDevIDConfig is node_attestors.tpm_devid of the configuration file.
type tpmDevIDConfig struct {
	// DevIDCAPath is a PEM file of the CAs (roots and intermediates)
	// DevID certificates chain to.
	DevIDCAPath string `json:"devid_ca_path"`
	// EndorsementCAPath is a PEM file of the TPM manufacturers' CAs EK
	// certificates chain to.
	EndorsementCAPath string `json:"endorsement_ca_path"`
}

// newTPMDevID returns the tpm_devid node attestor c configures.
func newTPMDevID(c *tpmDevIDConfig) (*tpm.DevIDServer, error) {
	if c.DevIDCAPath == "" || c.EndorsementCAPath == "" {
		return nil, usagef("%s: devid_ca_path and endorsement_ca_path are required", tpmDevIDKey)
	}
	s, err := tpm.LoadDevIDServer(tpm.DevIDFileConfig{DevIDCAPath: c.DevIDCAPath, EndorsementCAPath: c.EndorsementCAPath})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tpmDevIDKey, err) // tpm says "tpm_devid: "
	}
	return s, nil
}
