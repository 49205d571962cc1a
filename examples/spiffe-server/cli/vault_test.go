package cli

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

// TestRunVaultUpstream starts the server with upstream_authority.vault
// (SPIRE's keys) against the local Vault stand-in over TLS, with an
// AppRole login: the server's CA is signed by the PKI engine's
// sign-intermediate, its bundle is Vault's root, and an SVID it mints
// chains to that root through the server's CA and Vault's intermediate.
func TestRunVaultUpstream(t *testing.T) {
	dir, err := os.MkdirTemp("", "vault")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	v := vaulttest.New(t, vaulttest.Config{TLS: true, Intermediate: true, PKIMount: "spiffe-pki"})
	const secretID = "approle-secret-9f3e"
	v.AddAppRole("approle", "spiffe-server", secretID, vaulttest.TokenParams{TTL: time.Hour, Renewable: true})
	caPath := filepath.Join(dir, "vault-ca.pem")
	require.NoError(t, os.WriteFile(caPath, pemutil.EncodeCertificates([]*x509.Certificate{v.CACertificate()}), 0o644))
	config := writeJSON(t, dir, fmt.Sprintf(`{"upstream_authority": {"vault": {"vault_addr": %q, "pki_mount_point": "spiffe-pki",
		"ca_cert_path": %q, "approle_auth": {"approle_id": "spiffe-server", "approle_secret_id": %q}}}}`, v.URL(), caPath, secretID))
	sock := filepath.Join(dir, "admin.sock")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr logtest.Buffer
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"run", "-config", config, "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"),
			"-bind", "127.0.0.1:0", "-admin-socket", sock, "-log-level", "debug"}, io.Discard, &stderr)
	}()
	waitReady(t, &stderr, done)
	assert.Equal(t, 1, v.Requests("spiffe-pki/root/sign-intermediate"), "the server's CA comes from Vault")

	chain := mintChained(t, ctx, sock, v.Root(), 3) // the leaf, the server's CA, Vault's intermediate
	assert.Equal(t, v.Issuer().Raw, chain[2].Raw)
	assert.Equal(t, "spiffe://example.org", chain[1].URIs[0].String())
	stopRuns(t, cancel, &stderr, done)
	assert.Contains(t, stderr.String(), "logged in to Vault")
	assert.NotContains(t, stderr.String(), secretID, "no secret in the log")
}

// TestVaultSection reads upstream_authority.vault with SPIRE's keys and
// its environment variables, and refuses what cannot work before
// anything is created.
func TestVaultSection(t *testing.T) {
	dir := t.TempDir()
	parse := func(text string, args ...string) (runConfig, error) {
		t.Helper()
		var rc runConfig
		var stdout, stderr bytes.Buffer
		_, ok := newRunCommand(&rc).Parse(append([]string{"-config", writeJSON(t, dir, text)}, args...), &stdout, &stderr)
		require.True(t, ok, stderr.String())
		if err := upstreamKeys(&rc); err != nil {
			return rc, err
		}
		return rc, checkVault(&rc)
	}
	for _, env := range []string{"VAULT_ADDR", "VAULT_TOKEN", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_APPROLE_ID",
		"VAULT_APPROLE_SECRET_ID", "VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY"} {
		t.Setenv(env, "")
	}

	rc, err := parse(`{"upstream_authority": {"vault": {"vault_addr": "https://vault:8200", "namespace": "ns",
		"pki_mount_point": "pki-int", "insecure_skip_verify": true, "k8s_auth": {"k8s_auth_role_name": "spire", "token_path": "/var/run/token"}}}}`)
	require.NoError(t, err)
	require.NotNil(t, rc.Vault)
	assert.Equal(t, "pki-int", rc.Vault.PKIMountPoint)
	assert.True(t, rc.Vault.InsecureSkipVerify)

	for text, msg := range map[string]string{
		`{"upstream_authority": {"vault": {"token_auth": {"token": "t"}}}}`:                                    "vault_addr is required (or $VAULT_ADDR)",
		`{"upstream_authority": {"vault": {"vault_addr": "https://v"}}}`:                                       "exactly one of token_auth, approle_auth, k8s_auth and cert_auth is required",
		`{"upstream_authority": {"vault": {"vault_addr": "https://v", "token_auth": {}, "approle_auth": {}}}}`: "exactly one of",
		`{"upstream_authority": {"vault": {"vault_addr": "https://v", "token_auth": {}},
			"disk": {"cert_file_path": "/c", "key_file_path": "/k"}}}`: "one upstream authority only",
	} {
		_, err := parse(text)
		require.ErrorContains(t, err, msg, text)
		require.ErrorContains(t, err, "upstream_authority.vault")
		code, _, stderr := runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"))
		assert.Equal(t, ExitUsage, code, text)
		assert.Contains(t, stderr, msg, text)
		_, err = os.Stat(filepath.Join(dir, "data"))
		assert.ErrorIs(t, err, os.ErrNotExist, "nothing is created")
	}
	code, _, stderr := runMain(t, "-config", writeJSON(t, dir, `{"upstream_authority": {"vault": {"vault_address": "x"}}}`))
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, `unknown field "vault_address"`, "a key SPIRE does not have is refused")

	// A bad file of the section fails before anything is created, with
	// the client's reason.
	text := `{"upstream_authority": {"vault": {"vault_addr": "https://vault:8200", "ca_cert_path": "/nonexistent/ca.pem", "token_auth": {"token": "t"}}}}`
	code, _, stderr = runMain(t, "-config", writeJSON(t, dir, text), "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "data"),
		"-bind", "127.0.0.1:0", "-admin-socket", "")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr, "upstream_authority.vault: vault: cannot read CA certificates")
	_, err = os.Stat(filepath.Join(dir, "data"))
	assert.ErrorIs(t, err, os.ErrNotExist, "nothing is created")

	// SPIRE's environment variables fill the keys left out.
	v := vaulttest.New(t, vaulttest.Config{})
	t.Setenv("VAULT_ADDR", v.URL())
	t.Setenv("VAULT_TOKEN", v.NewToken(vaulttest.TokenParams{}))
	code, _, stderr = runMain(t, "-config", writeJSON(t, dir, `{"upstream_authority": {"vault": {"token_auth": {}}}}`),
		"-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "env-data"), "-bind", "127.0.0.1:0", "-admin-socket", "",
		"-ca-ttl", "1000000h")
	assert.Equal(t, ExitFailure, code, "the server got as far as Vault's answer")
	assert.Contains(t, stderr, "vault: pki/root/sign-intermediate: Vault answered 400: ttl is larger than maximum allowed", stderr)
	assert.Equal(t, 1, v.Requests("auth/token/lookup-self"), "$VAULT_TOKEN and $VAULT_ADDR were used")
}
