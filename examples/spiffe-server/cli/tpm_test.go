package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/tpm"
)

// TestTPMSection reads node_attestors.tpm and builds the attestor from
// it; a section that trusts no TPM, a bundle that does not load and a
// malformed EK hash are refused before the server opens anything.
func TestTPMSection(t *testing.T) {
	dir := t.TempDir()
	hash := strings.Repeat("ab", 32)
	var rc runConfig
	cmd := newRunCommand(&rc)
	_, ok := cmd.Parse([]string{"-config", writeJSON(t, dir, `{"node_attestors": {"tpm": {"ek_hashes": ["`+hash+`"], "pcrs": [0, 7]}}}`)}, os.Stdout, os.Stderr)
	require.True(t, ok)
	require.NotNil(t, rc.TPM)
	assert.Equal(t, []string{hash}, rc.TPM.EKHashes)
	assert.Equal(t, []int{0, 7}, rc.TPM.PCRs)
	s, err := newTPM(rc.TPM)
	require.NoError(t, err)
	assert.Equal(t, tpm.Type, s.Type())

	_, err = newTPM(&tpmConfig{})
	require.ErrorContains(t, err, "ca_bundle_path or ek_hashes is required")
	_, err = newTPM(&tpmConfig{CABundlePath: filepath.Join(dir, "missing.pem")})
	require.ErrorContains(t, err, "node_attestors.tpm: tpm: reading manufacturer CA bundle")
	_, err = newTPM(&tpmConfig{EKHashes: []string{"abc"}})
	require.ErrorContains(t, err, `EK hash "abc"`)

	for text, msg := range map[string]string{
		`{"node_attestors": {"tpm": {}}}`: "ca_bundle_path or ek_hashes is required",
		`{"node_attestors": {"tpm": {"ca_bundle_path": "` + filepath.Join(dir, "missing.pem") + `"}}}`: "missing.pem",
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.NotEqual(t, ExitOK, code, text)
		assert.Contains(t, stderr, msg, text)
		_, err := os.Stat(filepath.Join(dir, "data"))
		assert.True(t, os.IsNotExist(err), "a bad tpm section creates nothing")
	}
}
