package cli

import (
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/tpm"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestTPMDevIDSection reads node_attestors.tpm_devid, SPIRE's keys, and
// builds the attestor from it; a section without both CA files, or with
// one that does not load, is refused before the server opens anything.
func TestTPMDevIDSection(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, spiffeid.RequireTrustDomainFromString("example.org"))
	bundle := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root().Raw}), 0o644))
	var rc runConfig
	cmd := newRunCommand(&rc)
	_, ok := cmd.Parse([]string{"-config", writeJSON(t, dir, `{"node_attestors": {"tpm_devid": {"devid_ca_path": "`+bundle+`", "endorsement_ca_path": "`+bundle+`"}}}`)}, os.Stdout, os.Stderr)
	require.True(t, ok)
	require.NotNil(t, rc.TPMDevID)
	assert.Equal(t, bundle, rc.TPMDevID.DevIDCAPath)
	assert.Equal(t, bundle, rc.TPMDevID.EndorsementCAPath)
	s, err := newTPMDevID(rc.TPMDevID)
	require.NoError(t, err)
	assert.Equal(t, tpm.DevIDType, s.Type())

	missing := filepath.Join(dir, "missing.pem")
	for text, msg := range map[string]string{
		`{"node_attestors": {"tpm_devid": {"devid_ca_path": "` + bundle + `"}}}`:                                           "devid_ca_path and endorsement_ca_path are required",
		`{"node_attestors": {"tpm_devid": {"devid_ca_path": "` + missing + `", "endorsement_ca_path": "` + bundle + `"}}}`: "node_attestors.tpm_devid: tpm_devid: reading the DevID CA bundle",
		`{"node_attestors": {"tpm_devid": {"devid_ca": "` + bundle + `"}}}`:                                                `unknown field "devid_ca"`,
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.NotEqual(t, ExitOK, code, text)
		assert.Contains(t, stderr, msg, text)
		_, err := os.Stat(filepath.Join(dir, "data"))
		assert.True(t, os.IsNotExist(err), "a bad tpm_devid section creates nothing")
	}
}
