package e2e

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

// TestVaultUpstream runs spiffe-server with upstream_authority.vault
// against the local Vault stand-in (HTTPS, a mount issuing from an
// intermediate, Kubernetes login with a service account token file) and an
// agent: the bundle the agent trusts is Vault's root, and the workload's
// X509-SVID, fetched from the agent, chains to it through the server's CA
// and Vault's intermediate.
func TestVaultUpstream(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{TLS: true, Intermediate: true})
	const jwt = "eyJhbGciOiJSUzI1NiJ9.sa-token.sig"
	v.AddKubernetesRole("kubernetes", "spiffe-server", jwt, vaulttest.TokenParams{TTL: time.Hour, Renewable: true})

	dir := progtest.ShortTemp(t)
	caPath, tokenPath := filepath.Join(dir, "vault-ca.pem"), filepath.Join(dir, "sa-token")
	require.NoError(t, os.WriteFile(caPath, pemutil.EncodeCertificates([]*x509.Certificate{v.CACertificate()}), 0o644))
	require.NoError(t, os.WriteFile(tokenPath, []byte(jwt), 0o600))
	config := filepath.Join(dir, "server.json")
	require.NoError(t, os.WriteFile(config, fmt.Appendf(nil, `{"upstream_authority": {"vault": {"vault_addr": %q, "ca_cert_path": %q,
		"k8s_auth": {"k8s_auth_role_name": "spiffe-server", "token_path": %q}}}}`, v.URL(), caPath, tokenPath), 0o600))

	e := progtest.NewEnv(t, "-config", config)
	server := e.StartServer()
	bundle, err := os.ReadFile(e.BundleFile)
	require.NoError(t, err)
	assert.Equal(t, vaulttest.PEM(v.Root()), strings.TrimSpace(string(bundle)), "the bundle is Vault's root")
	assert.Equal(t, 1, v.Requests("pki/root/sign-intermediate"))

	e.StartAgent(e.Token())
	id := e.AgentID()
	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	out := filepath.Join(dir, "fetched")
	progtest.WaitFor(t, "the workload's SVID", func() bool {
		_, _, code := progtest.Run(t, nil, e.AgentBin, "api", "fetch", "x509", "-socket", e.APISock, "-write", out)
		return code == 0
	})
	svidPEM, err := os.ReadFile(filepath.Join(out, "svid.0.pem"))
	require.NoError(t, err)
	chain, err := pemutil.ParseCertificates(svidPEM)
	require.NoError(t, err)
	require.Len(t, chain, 3, "the SVID, the server's CA, Vault's intermediate")
	assert.Equal(t, "spiffe://example.org/web", chain[0].URIs[0].String())
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(v.Root())
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err, "the workload's SVID chains to Vault's root")
	assert.Equal(t, v.Issuer().Raw, chain[2].Raw)

	logs := server.Output()
	assert.Contains(t, logs, `msg="logged in to Vault" component=upstream_authority method=kubernetes`)
	assert.NotContains(t, logs, jwt, "the service account token is never logged")
}
