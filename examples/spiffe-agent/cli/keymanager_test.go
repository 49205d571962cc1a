package cli

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

// TestTPMKeyManagerFromFile reads key_manager.tpm: its device, the TPM
// opened for the agent's key; unknown keys are refused, and a TPM that
// cannot be opened stops the agent at start, naming the section.
func TestTPMKeyManagerFromFile(t *testing.T) {
	s, code, _ := parse(t, "-config", writeFile(t, "agent.json", `{"trust_domain": "example.org", "servers": ["s:1"]}`))
	require.Equal(t, ExitOK, code)
	keys, closeKeys, err := openKeyStore(s)
	require.NoError(t, err)
	assert.Nil(t, keys, "the default: a key in memory")
	require.NoError(t, closeKeys())
	assert.Equal(t, "memory", keyManagerName(s))
	s.dataDir = t.TempDir()
	assert.Equal(t, "disk", keyManagerName(s))

	sw := swtpmtest.New(t, swtpmtest.NewCA(t))
	s, code, _ = parse(t, "-config", writeFile(t, "agent.json",
		`{"trust_domain": "example.org", "servers": ["s:1"], "key_manager": {"tpm": {"device_path": "`+sw.Socket+`"}}}`))
	require.Equal(t, ExitOK, code)
	require.NotNil(t, s.cfg.TPMKeyManager)
	assert.Equal(t, sw.Socket, s.cfg.TPMKeyManager.DevicePath)
	assert.Equal(t, "tpm", keyManagerName(s))
	keys, closeKeys, err = openKeyStore(s)
	require.NoError(t, err)
	assert.Equal(t, "agent-key.tpmkey", keys.KeyFile())
	_, _, err = keys.GenerateKey(t.Context())
	require.NoError(t, err, "the TPM makes the key")
	require.NoError(t, closeKeys())

	_, code, stderr := parse(t, "-config", writeFile(t, "agent.json",
		`{"trust_domain": "example.org", "servers": ["s:1"], "key_manager": {"tpm": {"device": "/dev/tpmrm0"}}}`))
	assert.NotEqual(t, ExitOK, code)
	assert.Contains(t, stderr, "key_manager.tpm")
	assert.Contains(t, stderr, `unknown field "device"`)

	missing := filepath.Join(t.TempDir(), "no-tpm")
	var out bytes.Buffer
	code = Main(t.Context(), []string{"run", "-trust-domain", "example.org", "-server", "127.0.0.1:1",
		"-socket", socketPath(t), "-config", writeFile(t, "agent.json", `{"key_manager": {"tpm": {"device_path": "`+missing+`"}}}`)},
		io.Discard, &out)
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, lastLine(out.String()), "spiffe-agent run: key_manager.tpm: tpm: ")
	assert.Contains(t, lastLine(out.String()), missing)
}
