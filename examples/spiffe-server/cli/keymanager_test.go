package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/keymanager/pkcs11"
	"github.com/spiffekit/spiffekit/ca/keymanager/tpm"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/softhsmtest"
	"github.com/spiffekit/spiffekit/internal/testing/swtpmtest"
)

// TestKeyManagerSectionsRefused: key manager sections that cannot work
// are refused before the server creates anything, saying why; a token
// that does not open stops the start.
func TestKeyManagerSectionsRefused(t *testing.T) {
	dir := t.TempDir()
	for text, msg := range map[string]string{
		`{"key_manager": {"pkcs11": {"token_label": "t", "pin": "1"}}}`:                                              "module_path is required",
		`{"key_manager": {"pkcs11": {"module_path": "/m.so", "pin": "1"}}}`:                                          "one of token_label and token_serial",
		`{"key_manager": {"pkcs11": {"module_path": "/m.so", "token_label": "t", "token_serial": "s", "pin": "1"}}}`: "one of token_label and token_serial",
		`{"key_manager": {"pkcs11": {"module_path": "/m.so", "token_label": "t"}}}`:                                  "pin_file (or pin) is required",
		`{"key_manager": {"pkcs11": {"module_path": "/m.so", "token_label": "t", "pin": "1"}, "tpm": {}}}`:           "one key manager only",
		`{"key_manager": {"tpm": {"device_path": 7}}}`:                                                               "device_path",
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
		_, err := os.Stat(filepath.Join(dir, "data"))
		assert.True(t, os.IsNotExist(err), "a bad key_manager section creates nothing: %s", text)
	}

	tok := softhsmtest.NewToken(t)
	pinFile := filepath.Join(dir, "pin")
	require.NoError(t, os.WriteFile(pinFile, []byte("not-"+tok.PIN+"\n"), 0o600))
	for text, msg := range map[string]string{
		`{"key_manager": {"pkcs11": {"module_path": "` + tok.Module + `", "token_label": "` + tok.Label + `", "pin_file": "` + pinFile + `"}}}`:             "CKR_PIN_INCORRECT",
		`{"key_manager": {"pkcs11": {"module_path": "` + tok.Module + `", "token_label": "` + tok.Label + `", "pin_file": "` + pinFile + `", "pin": "1"}}}`: "pin and pin_file",
		`{"key_manager": {"pkcs11": {"module_path": "` + tok.Module + `", "token_label": "` + tok.Label + `", "pin_file": "` + dir + `/none"}}}`:            "reading pin_file",
		`{"key_manager": {"tpm": {"device_path": "` + dir + `/no-tpm"}}}`:                                                                                   "key_manager.tpm: tpm: ",
	} {
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"),
			"-bind", "127.0.0.1:0", "-admin-socket", "")
		assert.NotEqual(t, ExitOK, code, text)
		assert.Contains(t, stderr, msg, text)
	}
}

// runWithConfig runs the server with the configuration file text until it
// is ready, then stops it, and returns the data directory.
func runWithConfig(t *testing.T, dir, text string) string {
	t.Helper()
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-config", writeJSON(t, dir, text), "-trust-domain", "example.org",
			"-data-dir", data, "-bind", "127.0.0.1:0", "-admin-socket", ""}, io.Discard, &stderr)
	}()
	waitReady(t, &stderr, done)
	stopRuns(t, cancel, &stderr, done)
	return data
}

// journalKeyIDs returns the key IDs the CA journal in data names.
func journalKeyIDs(t *testing.T, data string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "ca-journal.json"))
	require.NoError(t, err)
	var doc struct {
		State struct {
			X509CAs []struct {
				KeyID string `json:"key_id"`
			} `json:"x509_cas"`
			JWTKeys []struct {
				KeyID string `json:"key_id"`
			} `json:"jwt_keys"`
		} `json:"state"`
	}
	require.NoError(t, json.Unmarshal(b, &doc))
	var ids []string
	for _, c := range doc.State.X509CAs {
		ids = append(ids, c.KeyID)
	}
	for _, k := range doc.State.JWTKeys {
		ids = append(ids, k.KeyID)
	}
	require.Len(t, ids, 2, "an X.509 CA and a JWT key")
	return ids
}

// noKeyFiles checks that the data directory holds no software CA key.
func noKeyFiles(t *testing.T, data string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "keys", "*"))
	assert.Empty(t, files, "no CA key on disk")
}

// TestRunPKCS11KeyManager: with key_manager.pkcs11, the server's CA keys
// are made in the token, and found there again when it starts again.
func TestRunPKCS11KeyManager(t *testing.T) {
	dir := t.TempDir()
	tok := softhsmtest.NewToken(t)
	pinFile := filepath.Join(dir, "pin")
	require.NoError(t, os.WriteFile(pinFile, []byte(tok.PIN+"\n"), 0o600))
	text := `{"key_manager": {"pkcs11": {"module_path": "` + tok.Module + `", "token_serial": "` + tok.Serial +
		`", "pin_file": "` + pinFile + `", "key_label_prefix": "server-a-"}}}`
	data := runWithConfig(t, dir, text)
	ids := journalKeyIDs(t, data)
	noKeyFiles(t, data)
	km, err := pkcs11.Open(pkcs11.Config{Module: tok.Module, TokenLabel: tok.Label, PIN: tok.PIN, LabelPrefix: "server-a-"})
	require.NoError(t, err)
	for _, id := range ids {
		_, err := km.Key(t.Context(), id)
		require.NoError(t, err, "key %s in the token", id)
	}
	require.NoError(t, km.Close())

	runWithConfig(t, dir, text)
	assert.Equal(t, ids, journalKeyIDs(t, data), "the restarted server kept its CA")

	// Started without the token, the server does not find its CA keys
	// among the files, and says so rather than sign with anything else.
	code, _, stderr := runMain(t, "-trust-domain", "example.org", "-data-dir", data, "-bind", "127.0.0.1:0", "-admin-socket", "")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr, "key not found")
	assert.Contains(t, stderr, ids[0])
}

// TestRunTPMKeyManager: with key_manager.tpm, the server's CA keys are
// made by the TPM and kept as blobs in <data-dir>/tpm-keys; a server on
// another TPM with the same data directory cannot use them.
func TestRunTPMKeyManager(t *testing.T) {
	dir := t.TempDir()
	tpms := swtpmtest.NewN(t, swtpmtest.NewCA(t), swtpmtest.NewCA(t))
	text := `{"key_manager": {"tpm": {"device_path": "` + tpms[0].Socket + `"}}}`
	data := runWithConfig(t, dir, text)
	ids := journalKeyIDs(t, data)
	noKeyFiles(t, data)
	for _, id := range ids {
		info, err := os.Stat(filepath.Join(data, "tpm-keys", id+".tpmkey"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
	}
	runWithConfig(t, dir, text)
	assert.Equal(t, ids, journalKeyIDs(t, data), "the restarted server kept its CA")

	km, err := tpm.Open(tpm.Config{Device: tpms[1].Socket, Dir: filepath.Join(data, "tpm-keys")})
	require.NoError(t, err)
	defer km.Close()
	_, err = km.Key(t.Context(), ids[0])
	require.ErrorContains(t, err, "the TPM refuses its file")
	require.NotErrorIs(t, err, ca.ErrKeyNotFound)
}
