package cli

import (
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// tpmDevIDKey is where the configuration file holds the tpm_devid node
// attestor's settings, with the keys of SPIRE's plugin_data.
const tpmDevIDKey = "node_attestor.tpm_devid"

const tpmDevIDHelp = `tpm_devid node attestation (a DevID key held in the TPM 2.0 and its certificate), SPIRE's keys:
{"devid_cert_path": "<PEM: DevID certificate, then intermediates>", "devid_priv_path": "<TPM2B_PRIVATE file>",
"devid_pub_path": "<TPM2B_PUBLIC file>", "tpm_device_path": "<device or swtpm socket, default /dev/tpmrm0>",
"devid_password": "", "owner_hierarchy_password": "", "endorsement_hierarchy_password": ""}`

// tpmDevIDConfig is node_attestor.tpm_devid of the configuration file.
type tpmDevIDConfig struct {
	DevIDCertPath                string `json:"devid_cert_path"`
	DevIDPrivPath                string `json:"devid_priv_path"`
	DevIDPubPath                 string `json:"devid_pub_path"`
	TPMDevicePath                string `json:"tpm_device_path"`
	DevIDPassword                string `json:"devid_password"`
	OwnerHierarchyPassword       string `json:"owner_hierarchy_password"`
	EndorsementHierarchyPassword string `json:"endorsement_hierarchy_password"`
}

// newTPMDevIDClient returns the tpm_devid client c configures: the files
// are read and checked here, once; the TPM is opened by each attestation.
func newTPMDevIDClient(td spiffeid.TrustDomain, c *tpmDevIDConfig) (attest.NodeAttestorClient, error) {
	if c.DevIDCertPath == "" || c.DevIDPrivPath == "" || c.DevIDPubPath == "" {
		return nil, errors.New(tpmDevIDKey + ": devid_cert_path, devid_priv_path and devid_pub_path are required")
	}
	cl, err := tpm.LoadDevIDClient(tpm.DevIDClientConfig{
		TrustDomain:                  td,
		Device:                       c.TPMDevicePath,
		DevIDPassword:                []byte(c.DevIDPassword),
		OwnerHierarchyPassword:       []byte(c.OwnerHierarchyPassword),
		EndorsementHierarchyPassword: []byte(c.EndorsementHierarchyPassword),
	}, tpm.DevIDFiles{CertPath: c.DevIDCertPath, PrivPath: c.DevIDPrivPath, PubPath: c.DevIDPubPath})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", tpmDevIDKey, err) // tpm says "tpm_devid: "
	}
	return cl, nil
}
