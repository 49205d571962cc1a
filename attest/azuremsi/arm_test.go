package azuremsi

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

var (
	testNIC    = azuretest.NICResourceID(testSub, "prod-rg", "web-01-nic")
	testNSG    = azuretest.NSGResourceID(testSub, "net-rg", "web-nsg")
	testSubnet = azuretest.SubnetResourceID(testSub, "net-rg", "prod-vnet", "default")
)

// armFixture is an Entra and Resource Manager stand-in and a server of
// testTenant with the lookup on.
type armFixture struct {
	arm *azuretest.ARM
	key *azuretest.Key
	srv *Server
}

func newARMFixture(t *testing.T, mod func(*ARMConfig)) *armFixture {
	t.Helper()
	e, k0, _ := entra(t)
	a := azuretest.StartARM(t)
	ac := &ARMConfig{AppID: a.AppID, AppSecret: a.AppSecret, ARMEndpoint: a.URL, LoginEndpoint: a.URL, Timeout: 5 * time.Second}
	if mod != nil {
		mod(ac)
	}
	srv := newTestServer(t, e, ServerConfig{Tenants: map[string]TenantConfig{testTenant: {ResourceID: testResource, ARM: ac}}})
	return &armFixture{arm: a, key: k0, srv: srv}
}

func (f *armFixture) attest(t *testing.T, c map[string]any) (attest.NodeResult, error) {
	return f.srv.Attest(t.Context(), td, payloadOf(t, f.key.Sign(t, c)), nil)
}

func TestARMSelectors(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newARMFixture(t, nil)
	f.arm.AddVM(t, testVM, testTenant, testPrincipal, testNIC)
	f.arm.AddNIC(t, testNIC, testNSG, testSubnet)
	res, err := f.attest(t, claims())
	require.NoError(t, err)
	for _, v := range []string{
		"subscription-id:" + testSub, "vm-name:prod-rg:web-01",
		"network-security-group:net-rg:web-nsg", "virtual-network:net-rg:prod-vnet", "virtual-network-subnet:net-rg:prod-vnet:default",
	} {
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: v}), "no %s in %v", v, res.Selectors)
	}
	gets := f.arm.Gets()
	require.Len(t, gets, 2)
	require.True(t, strings.EqualFold(testVM, gets[0]), gets[0])
	require.Equal(t, testNIC, gets[1])

	// The token is cached: a second attestation asks for none.
	_, err = f.attest(t, claims())
	require.NoError(t, err)
	require.Len(t, f.arm.Gets(), 4)
}

// TestARMAttacks: what Resource Manager says that does not fit the token
// refuses the VM, and a failed call refuses the attestation: never fewer
// selectors.
func TestARMAttacks(t *testing.T) {
	otherVM := azuretest.VMResourceID(testSub, "prod-rg", "web-02")
	cases := []struct {
		name    string
		claims  map[string]any
		setup   func(*testing.T, *azuretest.ARM)
		mod     func(*ARMConfig)
		reject  string
		failure string
	}{
		{name: "user-assigned identity", claims: claims(func(c map[string]any) {
			c["xms_mirid"] = "/subscriptions/" + testSub + "/resourceGroups/id-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web"
		}), reject: "needs the token's resource to be a VM"},
		{name: "scale set", claims: claims(func(c map[string]any) {
			c["xms_mirid"] = "/subscriptions/" + testSub + "/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachineScaleSets/web"
		}), reject: "resolves the system-assigned identity of a VM"},
		{name: "another VM", setup: func(t *testing.T, a *azuretest.ARM) {
			a.Set(testVM, http.StatusOK, `{"id":"`+otherVM+`","identity":{"principalId":"`+testPrincipal+`","tenantId":"`+testTenant+`"}}`)
		}, reject: "describes VM"},
		{name: "identity gone from the VM", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, "99999999-5d8e-4f90-a1b2-c3d4e5f60718", testNIC)
		}, reject: "the identity is gone from it"},
		{name: "another interface", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, testPrincipal, testNIC)
			a.Set(testNIC, http.StatusOK, `{"id":"`+azuretest.NICResourceID(testSub, "prod-rg", "other-nic")+`","properties":{}}`)
		}, reject: "describes network interface"},
		{name: "bad NSG ID", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, testPrincipal, testNIC)
			a.AddNIC(t, testNIC, "/subscriptions/x/nsg")
		}, reject: "not a network security group's resource ID"},
		{name: "bad subnet ID", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, testPrincipal, testNIC)
			a.AddNIC(t, testNIC, "", "/subscriptions/x/subnet")
		}, reject: "not a subnet's resource ID"},
		{name: "bad NIC ID", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, testPrincipal, "../../nic")
		}, reject: "not a network interface's resource ID"},
		{name: "no such VM", failure: "404 Not Found (ResourceNotFound"},
		{name: "no such interface", setup: func(t *testing.T, a *azuretest.ARM) {
			a.AddVM(t, testVM, testTenant, testPrincipal, testNIC)
		}, failure: "ResourceNotFound"},
		{name: "wrong secret", mod: func(c *ARMConfig) { c.AppSecret = "wrong" }, failure: "invalid_client"},
		{name: "ARM fails", setup: func(t *testing.T, a *azuretest.ARM) {
			a.Set(testVM, http.StatusInternalServerError, `{"error":{"code":"InternalServerError","message":"x"}}`)
		}, failure: "InternalServerError"},
		{name: "not JSON", setup: func(t *testing.T, a *azuretest.ARM) {
			a.Set(testVM, http.StatusOK, `<html>`)
		}, failure: "not the JSON expected"},
		{name: "huge", setup: func(t *testing.T, a *azuretest.ARM) {
			a.Set(testVM, http.StatusOK, `{"id":"`+strings.Repeat("a", MaxARMResponse)+`"}`)
		}, failure: "larger than"},
		{name: "hangs", setup: func(t *testing.T, a *azuretest.ARM) {
			a.Set(testVM, 0, azuretest.ARMHang)
		}, mod: func(c *ARMConfig) { c.Timeout = 200 * time.Millisecond }, failure: "deadline exceeded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newARMFixture(t, c.mod)
			if c.setup != nil {
				c.setup(t, f.arm)
			}
			cl := c.claims
			if cl == nil {
				cl = claims()
			}
			_, err := f.attest(t, cl)
			if c.reject != "" {
				requireRejected(t, err, c.reject)
				return
			}
			require.Error(t, err)
			require.NotErrorIs(t, err, attest.ErrNodeRejected)
			require.ErrorContains(t, err, c.failure)
		})
	}
}

func TestARMConfiguration(t *testing.T) {
	for _, c := range []struct {
		ac  ARMConfig
		err string
	}{
		{ARMConfig{AppID: "x"}, "needs app_id and app_secret"},
		{ARMConfig{AppID: "x", AppSecret: "y", Timeout: -1}, "negative"},
		{ARMConfig{AppID: "x", AppSecret: "y", ARMEndpoint: "ftp://x"}, "Resource Manager endpoint"},
		{ARMConfig{AppID: "x", AppSecret: "y", LoginEndpoint: "https://x/?a=b"}, "login endpoint"},
	} {
		_, err := NewServer(ServerConfig{Tenants: map[string]TenantConfig{testTenant: {ARM: &c.ac}}})
		require.ErrorContains(t, err, c.err)
	}
}
