package azuremsi

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
)

// FuzzAttest feeds arbitrary payloads to the server: it must never panic,
// and whatever it admits is the one identity a test key signed tokens of,
// whatever the payload's other bytes say. Seeds: tokens of that identity,
// of another tenant, unsigned, and broken ones.
func FuzzAttest(f *testing.F) {
	e, k0, k1 := entra(f)
	seed := func(token string) { f.Add(payloadOf(f, token)) }
	seed(k0.Sign(f, claims()))
	seed(k0.Sign(f, claims(func(c map[string]any) { delete(c, "xms_mirid") })))
	seed(k1.Sign(f, azuretest.MSIClaims(otherTenant, testPrincipal, testResource, "")))
	seed(azuretest.Encode(f, map[string]any{"alg": "none"}) + "." + azuretest.Encode(f, claims()) + ".")
	f.Add([]byte(`{"token":"a.b.c"}`))
	f.Add([]byte(`{"token":""}`))
	f.Add([]byte(`null`))

	srv := newTestServer(f, e, ServerConfig{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		res, err := srv.Attest(t.Context(), td, payload, nil)
		if err != nil {
			require.ErrorIs(t, err, attest.ErrNodeRejected)
			return
		}
		require.Equal(t, "/spiffekit/agent/azure_msi/"+testTenant+"/"+testPrincipal, res.AgentID.Path())
		require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "tenant-id:" + testTenant}))
	})
}

// FuzzParseKeySet feeds arbitrary JWKS to the parser: no panic, and what
// it keeps are RSA keys fit for RS256 under a key ID.
func FuzzParseKeySet(f *testing.F) {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &azuretest.NewKey(0, "k").Private.PublicKey, KeyID: "k", Use: "sig"}}})
	require.NoError(f, err)
	f.Add(b)
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := parseKeySet(b)
		if err != nil {
			return
		}
		require.NotEmpty(t, keys)
		for kid, k := range keys {
			require.NotEmpty(t, kid)
			require.GreaterOrEqual(t, k.N.BitLen(), 2048)
		}
	})
}

// FuzzParseResourceID: no panic, and what it accepts has parts that fit a
// selector's value without a separator of their own.
func FuzzParseResourceID(f *testing.F) {
	f.Add(testVM)
	f.Add("/subscriptions/" + testSub + "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/ss")
	f.Add("/subscriptions/x/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id")
	f.Fuzz(func(t *testing.T, id string) {
		r, err := ParseResourceID(id)
		if err != nil {
			return
		}
		require.Regexp(t, subscriptionRE, r.Subscription)
		require.Regexp(t, groupRE, r.ResourceGroup)
		require.Regexp(t, nameRE, r.VMName+r.ScaleSet)
		require.True(t, (r.VMName == "") != (r.ScaleSet == ""))
	})
}

// FuzzVMSelectors feeds arbitrary Resource Manager descriptions of a VM
// and of its network interfaces to the checks and selectors of the
// lookup: no panic, and what they accept is the token's VM, with
// well-formed selectors.
func FuzzVMSelectors(f *testing.F) {
	vmPath := "/subscriptions/" + testSub + "/resourceGroups/prod-rg/providers/Microsoft.Compute/virtualMachines/web-01"
	nic := azuretest.NICResourceID(testSub, "prod-rg", "nic")
	f.Add(`{"id":"`+vmPath+`","identity":{"principalId":"`+testPrincipal+`","tenantId":"`+testTenant+`"},"properties":{"networkProfile":{"networkInterfaces":[{"id":"`+nic+`"}]}}}`,
		`{"id":"`+nic+`","properties":{"networkSecurityGroup":{"id":"`+azuretest.NSGResourceID(testSub, "g", "n")+`"},"ipConfigurations":[{"properties":{"subnet":{"id":"`+azuretest.SubnetResourceID(testSub, "g", "v", "s")+`"}}}]}}`)
	f.Add(`{"id":"`+strings.ToUpper(vmPath)+`","identity":{"principalId":"`+testPrincipal+`","tenantId":"`+testTenant+`"},"properties":{"networkProfile":{"networkInterfaces":[{"id":"`+nic+`"},{"id":"x"}]}}}`, `{"id":"`+nic+`","properties":{"ipConfigurations":[{}]}}`)
	f.Add(`{}`, `null`)
	c := &Claims{TenantID: testTenant}
	c.Subject = testPrincipal
	f.Fuzz(func(t *testing.T, vmJSON, nicJSON string) {
		var vm virtualMachine
		if json.Unmarshal([]byte(vmJSON), &vm) != nil {
			return
		}
		sels, err := vmSelectors(c, vmPath, &vm, func(id string, n *networkInterface) error {
			return json.Unmarshal([]byte(nicJSON), n)
		})
		if err != nil {
			return
		}
		require.True(t, strings.EqualFold(vm.ID, vmPath))
		require.Equal(t, testPrincipal, vm.Identity.PrincipalID)
		for _, sel := range sels {
			require.NoError(t, sel.Validate())
		}
	})
}
