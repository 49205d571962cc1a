package cli

import (
	"crypto/ecdsa"
	"encoding/pem"
	"testing"

	"github.com/google/go-tpm/tpm2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// devIDPublic returns a TPMT_PUBLIC of key with a DevID key's attributes:
// enough for the agent's checks of its files, which the TPM and the
// server check further at attestation.
func devIDPublic(key *ecdsa.PublicKey) []byte {
	return tpm2.Marshal(tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true,
			UserWithAuth: true, SignEncrypt: true},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
			Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
			CurveID:   tpm2.TPMECCNistP256,
			KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: key.X.FillBytes(make([]byte, 32))},
			Y: tpm2.TPM2BECCParameter{Buffer: key.Y.FillBytes(make([]byte, 32))},
		}),
	})
}

// TestTPMDevIDFromFile reads node_attestor.tpm_devid, SPIRE's keys, and
// builds the client from its files; missing keys or files, and a second
// node attestor, are refused at start.
func TestTPMDevIDFromFile(t *testing.T) {
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	certs, key := ca.NewLeaf(t, spiffeid.RequireFromString("spiffe://example.org/node"))
	var certPEM []byte
	for _, c := range certs {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	certPath := writeFile(t, "devid.pem", string(certPEM))
	pubPath := writeFile(t, "devid.pub", string(devIDPublic(key.Public().(*ecdsa.PublicKey))))
	privPath := writeFile(t, "devid.priv", "\x00\x03abc")
	section := `"node_attestor": {"tpm_devid": {"devid_cert_path": "` + certPath + `", "devid_priv_path": "` + privPath +
		`", "devid_pub_path": "` + pubPath + `", "tpm_device_path": "/dev/tpmrm7", "devid_password": "p",
		"owner_hierarchy_password": "o", "endorsement_hierarchy_password": "e"}}`
	s, code, _ := parse(t, "-config", writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"], `+section+`}`))
	require.Equal(t, ExitOK, code)
	require.NotNil(t, s.cfg.TPMDevID)
	assert.Equal(t, "/dev/tpmrm7", s.cfg.TPMDevID.TPMDevicePath)
	assert.Equal(t, "o", s.cfg.TPMDevID.OwnerHierarchyPassword)
	a, err := newNodeAttestor(s)
	require.NoError(t, err)
	assert.Equal(t, "tpm_devid", a.Type())

	s.cfg.TPMDevID.DevIDPubPath = ""
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "devid_pub_path are required")
	s.cfg.TPMDevID.DevIDPubPath = certPath // not a public area
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "node_attestor.tpm_devid: tpm_devid: DevID public area")
	other := writeFile(t, "other.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root().Raw})))
	s.cfg.TPMDevID.DevIDPubPath, s.cfg.TPMDevID.DevIDCertPath = pubPath, other
	_, err = newNodeAttestor(s)
	require.ErrorContains(t, err, "not of the DevID key")

	_, code, stderr := parse(t, "-config", writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"], `+section+`}`),
		"-join-token", "abc")
	assert.NotEqual(t, ExitOK, code)
	assert.Contains(t, stderr, "give one node attestor")
}
