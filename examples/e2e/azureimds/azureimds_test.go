package azureimds_test

import (
	"encoding/pem"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

const (
	tenant  = "contoso.onmicrosoft.com"
	sub     = "8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"
	vm      = "02aab8a4-74ef-476e-8182-f6d2ba4166a6"
	agentID = "spiffe://example.org/spiffekit/agent/azure_imds/" + tenant + "/" + sub + "/" + vm
)

// agentArgs are the arguments of a spiffe-agent attesting with azure_imds
// against the metadata service at endpoint, naming tenant, with its data
// and socket under the Env's directory, named name.
func agentArgs(e *progtest.Env, name, endpoint, tenant string) []string {
	return []string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-azure-imds-tenant-domain", tenant, "-azure-imds-endpoint", endpoint, "-azure-imds-timeout", "20s",
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
}

// imdsOf runs a metadata service whose attested documents, of VM vmID in
// subscription, ca signs.
func imdsOf(t *testing.T, ca *azuretest.CA, vmID, subscription string) *azuretest.IMDS {
	imds := azuretest.StartIMDS(t)
	imds.SetDocument(func(nonce string) string { return ca.Sign(t, azuretest.Document(t, nonce, vmID, subscription)) })
	return imds
}

// TestAttestWithAttestedDocument runs spiffe-server with azure_imds
// configured for one tenant's subscription and a test root, and
// spiffe-agent on a "VM" whose metadata service is local: the agent gets
// its azure_imds ID and selectors and serves an SVID registered under a
// node alias of the subscription. A second agent of the same VM is refused
// while the first one's record exists; a subscription not allowed, a
// tenant not allowed and a document signed by another chain are refused.
func TestAttestWithAttestedDocument(t *testing.T) {
	ca := azuretest.NewCA(t, "metadata.azure.com")
	imds := imdsOf(t, ca, vm, sub)

	dir := progtest.ShortTemp(t)
	rootFile := filepath.Join(dir, "root.pem")
	require.NoError(t, os.WriteFile(rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}), 0o600))
	aia, err := url.Parse(ca.AIA.URL)
	require.NoError(t, err)
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"azure_imds": map[string]any{
		"tenants":           map[string]any{tenant: map[string]any{"allowed_subscriptions": []string{sub}}},
		"root_certificates": rootFile,
		"issuer_hosts":      []string{aia.Host},
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL, tenant)...)
	out := e.WaitAttested(agentID, agent)
	assert.Zero(t, imds.Refused(), "the agent asked without the Metadata header or an api-version")
	require.NotEmpty(t, imds.Nonces())
	assert.Positive(t, ca.AIAFetches(), "the intermediate was not fetched from the CA Issuers URL")
	for _, sel := range []string{"azure_imds:tenant:" + tenant, "azure_imds:subscription-id:" + sub, "azure_imds:vm-id:" + vm} {
		assert.Contains(t, out, sel)
	}

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/azure/sub", "-selector", "azure_imds:subscription-id:"+sub)
	e.Entry("spiffe://example.org/azure/sub", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

	refused := func(t *testing.T, name, endpoint, tenant, reason string) {
		t.Helper()
		before := len(srv.Output())
		_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, endpoint, tenant)...)
		assert.Equal(t, 1, code, stderr)
		assert.NotEmpty(t, stderr)
		progtest.WaitFor(t, "the server to log the refusal", func() bool {
			return strings.Contains(srv.Output()[before:], reason)
		})
	}
	t.Run("same VM again", func(t *testing.T) {
		refused(t, "copy", imds.URL, tenant, "the agent is attested already, and its node attestor does not allow attesting again")
	})
	t.Run("subscription not allowed", func(t *testing.T) {
		other := "11111111-2222-3333-4444-555555555555"
		refused(t, "other", imdsOf(t, ca, "12aab8a4-74ef-476e-8182-f6d2ba4166a6", other).URL, tenant, "subscription "+other+" is not allowed")
	})
	t.Run("tenant not allowed", func(t *testing.T) {
		refused(t, "stranger", imds.URL, "fabrikam.onmicrosoft.com", "tenant fabrikam.onmicrosoft.com is not allowed")
	})
	t.Run("another chain", func(t *testing.T) {
		forger := azuretest.NewCA(t, "metadata.azure.com")
		refused(t, "forged", imdsOf(t, forger, "22aab8a4-74ef-476e-8182-f6d2ba4166a6", sub).URL, tenant, "does not chain to the roots")
	})
}
