package azuremsi_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

const (
	tenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	principal = "2c1f7b3a-5d8e-4f90-a1b2-c3d4e5f60718"
	sub       = "8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"
	resource  = "api://spiffe-server"
	agentID   = "spiffe://example.org/spiffekit/agent/azure_msi/" + tenant + "/" + principal
)

// agentArgs are the arguments of a spiffe-agent attesting with azure_msi
// against the metadata service at endpoint for resource, with its data and
// socket under the Env's directory, named name.
func agentArgs(e *progtest.Env, name, endpoint, resource string) []string {
	return []string{"run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-azure-msi-endpoint", endpoint, "-azure-msi-resource-id", resource, "-azure-msi-timeout", "20s",
		"-socket", filepath.Join(e.Dir, name+".sock"), "-data-dir", filepath.Join(e.Dir, name+"-data")}
}

// imdsOf runs a metadata service whose identity's tokens key signs with
// the claims of claims for the resource asked.
func imdsOf(t *testing.T, key *azuretest.Key, claims func(resource string) map[string]any) *azuretest.IMDS {
	imds := azuretest.StartIMDS(t)
	imds.SetToken(func(resource string) string { return key.Sign(t, claims(resource)) })
	return imds
}

// TestAttestWithManagedIdentity runs spiffe-server with azure_msi
// configured for one tenant and a local Entra key endpoint, and
// spiffe-agent on a "VM" whose metadata service is local: the agent gets
// its azure_msi ID and selectors and serves an SVID registered under a
// node alias of the VM's resource group. A second agent of the same
// identity (a copied token) is refused while the first one's record
// exists; tokens of a tenant not allowed, for another resource, or signed
// by another key, are refused.
func TestAttestWithManagedIdentity(t *testing.T) {
	entra := azuretest.StartEntra(t)
	key := azuretest.NewKey(0, "k0")
	entra.SetKeys(tenant, key)
	vm := azuretest.VMResourceID(sub, "prod-rg", "web-01")
	imds := imdsOf(t, key, func(r string) map[string]any { return azuretest.MSIClaims(tenant, principal, r, vm) })

	dir := progtest.ShortTemp(t)
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"azure_msi": map[string]any{
		"tenants":  map[string]any{tenant: map[string]string{"resource_id": resource}},
		"keys_url": entra.KeysURL(),
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL, resource)...)
	out := e.WaitAttested(agentID, agent)
	assert.Zero(t, imds.Refused(), "the agent asked without the Metadata header or an api-version")
	assert.Equal(t, resource, imds.Resources()[0])
	for _, sel := range []string{"azure_msi:tenant-id:" + tenant, "azure_msi:principal-id:" + principal, "azure_msi:subscription-id:" + sub,
		"azure_msi:resource-group:prod-rg", "azure_msi:vm-name:prod-rg:web-01"} {
		assert.Contains(t, out, sel)
	}

	// A node alias of the resource group's VMs, and a workload under it.
	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/azure/prod", "-selector", "azure_msi:resource-group:prod-rg")
	e.Entry("spiffe://example.org/azure/prod", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

	refused := func(t *testing.T, name, endpoint, resource, reason string) {
		t.Helper()
		before := len(srv.Output())
		_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, name, endpoint, resource)...)
		assert.Equal(t, 1, code, stderr)
		assert.NotEmpty(t, stderr)
		progtest.WaitFor(t, "the server to log the refusal", func() bool {
			return strings.Contains(srv.Output()[before:], reason)
		})
	}
	t.Run("copied token", func(t *testing.T) {
		refused(t, "copy", imds.URL, resource, "the agent is attested already, and its node attestor does not allow attesting again")
	})
	t.Run("tenant not allowed", func(t *testing.T) {
		other := "0d0f5d4c-2e1b-4b58-9c3a-7e1f2a3b4c5d"
		stranger := imdsOf(t, key, func(r string) map[string]any { return azuretest.MSIClaims(other, principal, r, "") })
		refused(t, "other", stranger.URL, resource, "tenant "+other+" is not allowed")
	})
	t.Run("another resource", func(t *testing.T) {
		refused(t, "arm", imds.URL, "https://management.azure.com/", "audience https://management.azure.com/, want "+resource)
	})
	t.Run("another key", func(t *testing.T) {
		forger := azuretest.NewKey(1, "k0")
		victim := "3c1f7b3a-5d8e-4f90-a1b2-c3d4e5f60718"
		forged := imdsOf(t, forger, func(r string) map[string]any { return azuretest.MSIClaims(tenant, victim, r, vm) })
		refused(t, "forged", forged.URL, resource, "signature does not verify")
	})
}

// TestAttestWithResourceManagerLookup runs spiffe-server with azure_msi's
// Resource Manager lookups on (SPIRE's app_id and app_secret, the
// endpoints pointed at a local stand-in of Entra's token endpoint and of
// Resource Manager): the agent gets the selectors of its VM's network
// security group, virtual network and subnet, and an SVID under a node
// alias of the subnet; a VM whose identity is no longer the token's is
// refused.
func TestAttestWithResourceManagerLookup(t *testing.T) {
	entra := azuretest.StartEntra(t)
	key := azuretest.NewKey(0, "k0")
	entra.SetKeys(tenant, key)
	arm := azuretest.StartARM(t)
	vm := azuretest.VMResourceID(sub, "prod-rg", "web-01")
	nic := azuretest.NICResourceID(sub, "prod-rg", "web-01-nic")
	arm.AddVM(t, vm, tenant, principal, nic)
	arm.AddNIC(t, nic, azuretest.NSGResourceID(sub, "net-rg", "web-nsg"), azuretest.SubnetResourceID(sub, "net-rg", "prod-vnet", "web"))
	imds := imdsOf(t, key, func(r string) map[string]any { return azuretest.MSIClaims(tenant, principal, r, vm) })

	dir := progtest.ShortTemp(t)
	configFile := progtest.WriteConfig(t, dir, map[string]any{"node_attestors": map[string]any{"azure_msi": map[string]any{
		"tenants":        map[string]any{tenant: map[string]string{"resource_id": resource, "app_id": arm.AppID, "app_secret": arm.AppSecret}},
		"keys_url":       entra.KeysURL(),
		"arm_endpoint":   arm.URL,
		"login_endpoint": arm.URL,
	}}})
	e := progtest.NewEnv(t, "-config", configFile)
	srv := e.StartServer()

	agent := progtest.Start(t, e.AgentBin, agentArgs(e, "a", imds.URL, resource)...)
	out := e.WaitAttested(agentID, agent)
	for _, sel := range []string{"azure_msi:vm-name:prod-rg:web-01", "azure_msi:network-security-group:net-rg:web-nsg",
		"azure_msi:virtual-network:net-rg:prod-vnet", "azure_msi:virtual-network-subnet:net-rg:prod-vnet:web"} {
		assert.Contains(t, out, sel)
	}

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	progtest.Must(t, e.ServerBin, "entry", "create", "-admin-socket", e.AdminSock, "-parent-id", "spiffe://example.org/spiffekit/server",
		"-spiffe-id", "spiffe://example.org/azure/web-subnet", "-selector", "azure_msi:virtual-network-subnet:net-rg:prod-vnet:web")
	e.Entry("spiffe://example.org/azure/web-subnet", "spiffe://example.org/web", uid)
	e.WaitSVID(filepath.Join(e.Dir, "a.sock"), "spiffe://example.org/web", agent)

	// Another identity's token naming the same VM: the VM's identity is
	// not it.
	before := len(srv.Output())
	other := "3c1f7b3a-5d8e-4f90-a1b2-c3d4e5f60718"
	stale := imdsOf(t, key, func(r string) map[string]any { return azuretest.MSIClaims(tenant, other, r, vm) })
	_, stderr, code := progtest.Run(t, nil, e.AgentBin, agentArgs(e, "stale", stale.URL, resource)...)
	assert.Equal(t, 1, code, stderr)
	progtest.WaitFor(t, "the server to log the refusal", func() bool {
		return strings.Contains(srv.Output()[before:], "the identity is gone from it")
	})
}
