package azuremsi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

const (
	testTenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	otherTenant   = "0d0f5d4c-2e1b-4b58-9c3a-7e1f2a3b4c5d"
	testPrincipal = "2c1f7b3a-5d8e-4f90-a1b2-c3d4e5f60718"
	testSub       = "8f2a1c3d-4b5e-6f70-8192-a3b4c5d6e7f8"
	testResource  = "api://spiffe-server"
)

var testVM = azuretest.VMResourceID(testSub, "prod-rg", "web-01")

// entra runs an Entra stand-in with key 0 ("k0") for testTenant and key 1
// ("k1") for otherTenant.
func entra(t testing.TB) (*azuretest.Entra, *azuretest.Key, *azuretest.Key) {
	e := azuretest.StartEntra(t)
	k0, k1 := azuretest.NewKey(0, "k0"), azuretest.NewKey(1, "k1")
	e.SetKeys(testTenant, k0)
	e.SetKeys(otherTenant, k1)
	return e, k0, k1
}

func newTestServer(t testing.TB, e *azuretest.Entra, c ServerConfig) *Server {
	t.Helper()
	if c.Tenants == nil {
		c.Tenants = map[string]TenantConfig{testTenant: {ResourceID: testResource}}
	}
	if c.KeysURL == "" {
		c.KeysURL = e.KeysURL()
	}
	s, err := NewServer(c)
	require.NoError(t, err)
	return s
}

func payloadOf(t testing.TB, token string) []byte {
	t.Helper()
	b, err := json.Marshal(Payload{Token: token})
	require.NoError(t, err)
	return b
}

func claims(mutate ...func(map[string]any)) map[string]any {
	c := azuretest.MSIClaims(testTenant, testPrincipal, testResource, testVM)
	for _, m := range mutate {
		m(c)
	}
	return c
}

func requireRejected(t *testing.T, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	require.ErrorIs(t, err, attest.ErrNodeRejected)
	require.Contains(t, err.Error(), contains)
}

func TestAttestThroughIMDS(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the servers' cleanup
	e, k0, _ := entra(t)
	imds := azuretest.StartIMDS(t)
	imds.SetToken(func(resource string) string {
		return k0.Sign(t, azuretest.MSIClaims(testTenant, testPrincipal, resource, testVM))
	})

	client, err := NewClient(ClientConfig{Endpoint: imds.URL, ResourceID: testResource, ClientID: "9a5ae4b2-33f5-4a52-b8a0-0e8ec0d3a11f"})
	require.NoError(t, err)
	require.Equal(t, Type, client.Type())
	payload, err := client.Payload(t.Context())
	require.NoError(t, err)
	require.Equal(t, []string{testResource}, imds.Resources())
	require.Zero(t, imds.Refused(), "a request without the Metadata header or api-version")

	srv := newTestServer(t, e, ServerConfig{})
	require.Equal(t, Type, srv.Type())
	res, err := srv.Attest(t.Context(), td, payload, nil)
	require.NoError(t, err)
	require.Equal(t, "spiffe://example.org/spiffekit/agent/azure_msi/"+testTenant+"/"+testPrincipal, res.AgentID.String())
	require.False(t, res.CanReattest)
	want := attest.NewSelectors(
		attest.Selector{Type: Type, Value: "tenant-id:" + testTenant},
		attest.Selector{Type: Type, Value: "principal-id:" + testPrincipal},
		attest.Selector{Type: Type, Value: "subscription-id:" + testSub},
		attest.Selector{Type: Type, Value: "resource-group:prod-rg"},
		attest.Selector{Type: Type, Value: "vm-name:prod-rg:web-01"},
	)
	require.True(t, want.Equal(res.Selectors), "got %v", res.Selectors)

	// The keys were fetched once, and are used again.
	_, err = srv.Attest(t.Context(), td, payload, nil)
	require.NoError(t, err)
	require.Equal(t, 1, e.Fetches())

	_, err = client.Respond(t.Context(), []byte("x"))
	require.Error(t, err)
}

func TestAttestScaleSetAndUserAssigned(t *testing.T) {
	e, k0, _ := entra(t)
	srv := newTestServer(t, e, ServerConfig{AllowReattestation: true})

	vmss := "/subscriptions/" + testSub + "/resourceGroups/pool-rg/providers/Microsoft.Compute/virtualMachineScaleSets/pool"
	res, err := srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims(func(c map[string]any) { c["xms_mirid"] = vmss }))), nil)
	require.NoError(t, err)
	require.True(t, res.CanReattest)
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "vmss-name:pool-rg:pool"}), "%v", res.Selectors)
	require.True(t, res.Selectors.Contains(attest.Selector{Type: Type, Value: "resource-group:pool-rg"}), "%v", res.Selectors)

	// A user-assigned identity's resource names no VM: tenant and
	// principal only.
	uami := "/subscriptions/" + testSub + "/resourcegroups/id-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/spire"
	res, err = srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims(func(c map[string]any) { c["xms_mirid"] = uami }))), nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Selectors.Len(), "%v", res.Selectors)

	// The v2 issuer is the tenant's too.
	res, err = srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims(func(c map[string]any) {
		c["iss"] = "https://login.microsoftonline.com/" + testTenant + "/v2.0"
		delete(c, "xms_mirid")
	}))), nil)
	require.NoError(t, err)
	require.Equal(t, 2, res.Selectors.Len(), "%v", res.Selectors)
}

// hs256 returns a token signed with HMAC-SHA256 under secret: the
// algorithm confusion attack, with the server's RSA public key as secret.
func hs256(t *testing.T, secret []byte, kid string, c map[string]any) string {
	signing := azuretest.Encode(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + azuretest.Encode(t, c)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// TestAttacks tries to break each rule of Attest; each attempt is refused.
func TestAttacks(t *testing.T) {
	e, k0, k1 := entra(t)
	srv := newTestServer(t, e, ServerConfig{
		Tenants: map[string]TenantConfig{testTenant: {ResourceID: testResource}, otherTenant: {}},
	})
	good := k0.Sign(t, claims())
	_, err := srv.Attest(t.Context(), td, payloadOf(t, good), nil)
	require.NoError(t, err)

	forger := azuretest.NewKey(2, "k0") // another key under the tenant's key ID
	pubDER, err := x509.MarshalPKIXPublicKey(&k0.Private.PublicKey)
	require.NoError(t, err)
	parts := strings.Split(good, ".")
	now := time.Now()
	strangerTenant := "11111111-2222-3333-4444-555555555555"

	for _, tc := range []struct {
		name, token, err string
	}{
		{"wrong audience", k0.Sign(t, claims(func(c map[string]any) { c["aud"] = DefaultResourceID })), "audience https://management.azure.com/, want api://spiffe-server"},
		{"audience with a trailing slash", k0.Sign(t, claims(func(c map[string]any) { c["aud"] = testResource + "/" })), "want api://spiffe-server"},
		{"two audiences", k0.Sign(t, claims(func(c map[string]any) { c["aud"] = []string{testResource, "x"} })), "audience api://spiffe-server,x"},
		{"no audience", k0.Sign(t, claims(func(c map[string]any) { delete(c, "aud") })), "audience"},
		{"another tenant's issuer", k0.Sign(t, claims(func(c map[string]any) { c["iss"] = "https://sts.windows.net/" + otherTenant + "/" })), "is not the tenant's"},
		{"a foreign issuer", k0.Sign(t, claims(func(c map[string]any) { c["iss"] = "https://evil.example/" + testTenant + "/" })), "is not the tenant's"},
		{"the common issuer", k0.Sign(t, claims(func(c map[string]any) { c["iss"] = "https://login.microsoftonline.com/common/" })), "is not the tenant's"},
		{"tenant not allowed", k0.Sign(t, claims(func(c map[string]any) { c["tid"] = strangerTenant })), "tenant " + strangerTenant + " is not allowed"},
		{"no tenant", k0.Sign(t, claims(func(c map[string]any) { delete(c, "tid") })), "tenant  is not allowed"},
		{"tenant in upper case", k0.Sign(t, claims(func(c map[string]any) { c["tid"] = strings.ToUpper(testTenant) })), "is not allowed"},
		{"allowed tenant, another tenant's key", k1.Sign(t, claims()), `unknown key ID "k1"`},
		{"other tenant's claims with this tenant's key", k0.Sign(t, azuretest.MSIClaims(otherTenant, testPrincipal, DefaultResourceID, "")), `unknown key ID "k0"`},
		{"expired", k0.Sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-Leeway - time.Minute).Unix() })), "expired"},
		{"not yet valid", k0.Sign(t, claims(func(c map[string]any) { c["nbf"] = now.Add(Leeway + time.Minute).Unix() })), "not valid yet"},
		{"issued in the future", k0.Sign(t, claims(func(c map[string]any) { c["iat"] = now.Add(Leeway + time.Minute).Unix() })), "issued in the future"},
		{"no expiry", k0.Sign(t, claims(func(c map[string]any) { delete(c, "exp") })), "has no expiry"},
		{"no subject", k0.Sign(t, claims(func(c map[string]any) { delete(c, "sub") })), "subject  is not an object ID"},
		{"subject a path", k0.Sign(t, claims(func(c map[string]any) { c["sub"] = "../../server" })), "is not an object ID"},
		{"subject with a NUL", k0.Sign(t, claims(func(c map[string]any) { c["sub"] = testPrincipal + "\x00" })), `"` + testPrincipal + `\x00"`},
		{"signed by another key", forger.Sign(t, claims()), "signature does not verify"},
		{"claims changed after signing", parts[0] + "." + azuretest.Encode(t, claims(func(c map[string]any) { c["sub"] = "3c1f7b3a-5d8e-4f90-a1b2-c3d4e5f60718" })) + "." + parts[2], "signature does not verify"},
		{"signature cut", parts[0] + "." + parts[1] + "." + parts[2][:20], "signature does not verify"},
		{"no signature", parts[0] + "." + parts[1] + ".", "signature does not verify"},
		{"alg none", azuretest.Encode(t, map[string]any{"alg": "none", "kid": "k0"}) + "." + parts[1] + ".", "not a JWS signed with RS256"},
		{"HS256 with the public key", hs256(t, pubDER, "k0", claims()), "not a JWS signed with RS256"},
		{"RS256 header, HMAC signature", func() string {
			tok := hs256(t, pubDER, "k0", claims())
			p := strings.Split(tok, ".")
			return parts[0] + "." + p[1] + "." + p[2]
		}(), "signature does not verify"},
		{"PS256", k0.SignWithHeader(t, map[string]any{"alg": "PS256", "kid": "k0"}, claims()), "not a JWS signed with RS256"},
		{"unknown key ID", k0.SignWithHeader(t, map[string]any{"alg": "RS256", "kid": "k9"}, claims()), `unknown key ID "k9"`},
		{"no key ID", k0.SignWithHeader(t, map[string]any{"alg": "RS256"}, claims()), "no key ID"},
		{"embedded JWK", k0.SignWithHeader(t, map[string]any{"alg": "RS256", "jwk": map[string]any{"kty": "RSA", "kid": "k0"}}, claims()), "not a JWS signed with RS256"},
		{"not a JWT", "abc", "not a JWS"},
		{"JWE", "a.b.c.d.e", "not a JWS"},
		{"claims not JSON", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1")) + "." + parts[2], "claims do not parse"},
		{"claims of the wrong types", k0.Sign(t, claims(func(c map[string]any) { c["tid"] = 7 })), "claims do not parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, payloadOf(t, tc.token), nil)
			requireRejected(t, err, tc.err)
		})
	}

	// Within the leeway, a token just expired still passes.
	_, err = srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims(func(c map[string]any) { c["exp"] = now.Add(-Leeway / 2).Unix() }))), nil)
	require.NoError(t, err)
}

func TestMalformedPayloads(t *testing.T) {
	e, _, _ := entra(t)
	srv := newTestServer(t, e, ServerConfig{})
	for _, tc := range []struct {
		name, payload, err string
	}{
		{"empty", "", "payload is empty"},
		{"not JSON", "token", "not a JSON object"},
		{"an array", "[]", "not a JSON object"},
		{"trailing data", `{"token":"a.b.c"} {}`, "data after its JSON object"},
		{"no token", `{}`, "no token"},
		{"token not a string", `{"token":1}`, "not a JSON object"},
		{"too large", `{"token":"` + strings.Repeat("a", attest.MaxNodePayload) + `"}`, "larger than 65536 bytes"},
		{"huge token", `{"token":"` + strings.Repeat("a", MaxTokenSize+1) + `"}`, "token is larger than 16384 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := srv.Attest(t.Context(), td, []byte(tc.payload), nil)
			requireRejected(t, err, tc.err)
		})
	}
	require.Zero(t, e.Fetches(), "a malformed payload made the server fetch keys")

	_, err := srv.Attest(t.Context(), spiffeid.TrustDomain{}, payloadOf(t, "a.b.c"), nil)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrNodeRejected)
}

// TestKeys: the keys of each tenant are fetched from the tenant's own
// URL, cached, fetched again for a new key ID (at most so often), kept
// when Entra fails, and an Entra that fails before any fetch is an error
// that is not a rejection.
func TestKeys(t *testing.T) {
	t.Run("unknown key IDs do not flood Entra", func(t *testing.T) {
		e, k0, _ := entra(t)
		srv := newTestServer(t, e, ServerConfig{})
		for i := range 5 {
			_, err := srv.Attest(t.Context(), td, payloadOf(t, k0.SignWithHeader(t, map[string]any{"alg": "RS256", "kid": "x" + string(rune('0'+i))}, claims())), nil)
			requireRejected(t, err, "unknown key ID")
		}
		require.Equal(t, 1, e.Fetches())
	})
	t.Run("rotation", func(t *testing.T) {
		e, k0, _ := entra(t)
		srv := newTestServer(t, e, ServerConfig{})
		srv.tenants[testTenant].keys.minRefetch = 0
		_, err := srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims())), nil)
		require.NoError(t, err)
		next := azuretest.NewKey(2, "k2")
		e.SetKeys(testTenant, k0, next)
		_, err = srv.Attest(t.Context(), td, payloadOf(t, next.Sign(t, claims())), nil)
		require.NoError(t, err)
		require.Equal(t, 2, e.Fetches())
	})
	t.Run("Entra down", func(t *testing.T) {
		e, k0, _ := entra(t)
		srv := newTestServer(t, e, ServerConfig{KeysRefresh: time.Nanosecond})
		_, err := srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims())), nil)
		require.NoError(t, err)
		e.SetBody(testTenant, "oops")
		// Stale, fetched again, failed: the keys it had stay.
		_, err = srv.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims())), nil)
		require.NoError(t, err)
		require.Equal(t, 2, e.Fetches())

		fresh := newTestServer(t, e, ServerConfig{})
		_, err = fresh.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims())), nil)
		require.ErrorContains(t, err, "azuremsi: keys of tenant "+testTenant)
		require.NotErrorIs(t, err, attest.ErrNodeRejected)

		url := e.URL
		e.Close()
		gone := newTestServer(t, e, ServerConfig{KeysURL: url + azuretest.KeysPath})
		_, err = gone.Attest(t.Context(), td, payloadOf(t, k0.Sign(t, claims())), nil)
		require.Error(t, err)
		require.NotErrorIs(t, err, attest.ErrNodeRejected)
	})
	t.Run("tenant unknown to Entra", func(t *testing.T) {
		e, _, _ := entra(t)
		third := "99999999-8888-7777-6666-555555555555"
		srv := newTestServer(t, e, ServerConfig{Tenants: map[string]TenantConfig{third: {}}})
		_, err := srv.Attest(t.Context(), td, payloadOf(t, azuretest.NewKey(0, "k0").Sign(t, azuretest.MSIClaims(third, testPrincipal, DefaultResourceID, ""))), nil)
		require.ErrorContains(t, err, "status 400")
	})
}

func TestParseKeySet(t *testing.T) {
	rsaKey := &azuretest.NewKey(0, "k").Private.PublicKey
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	set := func(keys ...jose.JSONWebKey) []byte {
		b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
		require.NoError(t, err)
		return b
	}
	keys, err := parseKeySet(set(
		jose.JSONWebKey{Key: rsaKey, KeyID: "good", Use: "sig"},
		jose.JSONWebKey{Key: rsaKey, KeyID: "no-use"},
		jose.JSONWebKey{Key: rsaKey, KeyID: "enc", Use: "enc"},
		jose.JSONWebKey{Key: rsaKey, KeyID: "ps", Algorithm: "PS256"},
		jose.JSONWebKey{Key: rsaKey},
		jose.JSONWebKey{Key: &small.PublicKey, KeyID: "small"},
		jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec"},
	))
	require.NoError(t, err)
	require.Len(t, keys, 2)
	require.NotNil(t, keys["good"])
	require.NotNil(t, keys["no-use"])

	withJunk := `{"keys":[{"kty":"what"},` + strings.TrimPrefix(string(set(jose.JSONWebKey{Key: rsaKey, KeyID: "good"})), `{"keys":[`)
	keys, err = parseKeySet([]byte(withJunk))
	require.NoError(t, err)
	require.Len(t, keys, 1)

	for _, b := range []string{"", "[]", `{"keys":{}}`, `{"keys":[]}`, string(set(jose.JSONWebKey{Key: &ec.PublicKey, KeyID: "ec"})), strings.Repeat(" ", maxKeySet+1)} {
		_, err := parseKeySet([]byte(b))
		require.Error(t, err, b)
	}
}

func TestParseResourceID(t *testing.T) {
	r, err := ParseResourceID(testVM)
	require.NoError(t, err)
	require.Equal(t, Resource{Subscription: testSub, ResourceGroup: "prod-rg", VMName: "web-01"}, r)
	r, err = ParseResourceID("/SUBSCRIPTIONS/" + strings.ToUpper(testSub) + "/resourceGroups/a.b_(c)/providers/microsoft.compute/virtualmachinescalesets/pool-1")
	require.NoError(t, err)
	require.Equal(t, Resource{Subscription: testSub, ResourceGroup: "a.b_(c)", ScaleSet: "pool-1"}, r)
	for _, id := range []string{
		"",
		"/subscriptions/" + testSub,
		"subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm/",
		"/subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id",
		"/subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.Compute/disks/d",
		"/subscriptions/not-a-guid/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"/subscriptions/" + testSub + "/resourcegroups/r:g/providers/Microsoft.Compute/virtualMachines/vm",
		"/subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/v:m",
		"/subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/",
		"/subscriptions/" + testSub + "/groups/rg/providers/Microsoft.Compute/virtualMachines/vm",
		"/subscriptions/" + testSub + "/resourcegroups/rg/providers/Microsoft.Compute/virtualMachines/" + strings.Repeat("v", 1100),
	} {
		_, err := ParseResourceID(id)
		require.Error(t, err, id)
	}
}

func TestNewServerConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    ServerConfig
		err  string
	}{
		{"no tenant", ServerConfig{}, "tenant allow-list is required"},
		{"bad tenant", ServerConfig{Tenants: map[string]TenantConfig{"contoso.onmicrosoft.com": {}}}, "is not a tenant ID"},
		{"tenant twice", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}, strings.ToUpper(testTenant): {}}}, "given twice"},
		{"too many tenants", ServerConfig{Tenants: func() map[string]TenantConfig {
			m := map[string]TenantConfig{}
			for i := range maxTenants + 1 {
				m[string(rune(i))] = TenantConfig{}
			}
			return m
		}()}, "more than 1024"},
		{"negative refresh", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, KeysRefresh: -1}, "negative"},
		{"keys URL without tenant", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, KeysURL: "https://login.example/keys"}, "does not contain {tenant}"},
		{"keys URL over http", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, KeysURL: "http://login.example/{tenant}/keys"}, "want https"},
		{"keys URL not a URL", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, KeysURL: "{tenant}"}, "is not a URL"},
		{"keys URL ftp", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, KeysURL: "ftp://x/{tenant}"}, "want https"},
		{"issuer without tenant", ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}, Issuers: []string{"https://sts.windows.net/"}}, "does not contain {tenant}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.c)
			require.ErrorContains(t, err, tc.err)
		})
	}
	s, err := NewServer(ServerConfig{Tenants: map[string]TenantConfig{strings.ToUpper(testTenant): {}}, KeysURL: "http://localhost:1/{tenant}"})
	require.NoError(t, err)
	tn := s.tenants[testTenant]
	require.Equal(t, DefaultResourceID, tn.audience)
	require.Equal(t, "http://localhost:1/"+testTenant, tn.keys.url)
	require.Equal(t, []string{"https://sts.windows.net/" + testTenant + "/", "https://login.microsoftonline.com/" + testTenant + "/v2.0"}, tn.issuers)
	require.Equal(t, DefaultKeysRefresh, tn.keys.refresh)
	s, err = NewServer(ServerConfig{Tenants: map[string]TenantConfig{testTenant: {}}})
	require.NoError(t, err)
	require.Equal(t, "https://login.microsoftonline.com/"+testTenant+"/discovery/v2.0/keys", s.tenants[testTenant].keys.url)
}

func TestClientConfiguration(t *testing.T) {
	_, err := NewClient(ClientConfig{Timeout: -1})
	require.ErrorContains(t, err, "negative timeout")
	for _, e := range []string{"169.254.169.254", "ftp://x", "http://", "://", "http://x/?a=b"} {
		_, err = NewClient(ClientConfig{Endpoint: e})
		require.ErrorContains(t, err, "want an http:// or https:// URL", e)
	}
	c, err := NewClient(ClientConfig{})
	require.NoError(t, err)
	require.Equal(t, DefaultTimeout, c.timeout)
	require.Equal(t, DefaultResourceID, c.resource)
}

// TestClientHostileService: a metadata service that floods, stalls, or
// answers with something else than a token ends the fetch with an error,
// within its timeout.
func TestClientHostileService(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // after the servers' cleanup
	_, k0, _ := entra(t)
	fetch := func(t *testing.T, imds *azuretest.IMDS, timeout time.Duration) error {
		c, err := NewClient(ClientConfig{Endpoint: imds.URL, ResourceID: testResource, Timeout: timeout})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		return err
	}
	body := func(t *testing.T, b string) *azuretest.IMDS {
		imds := azuretest.StartIMDS(t)
		imds.SetBody(azuretest.TokenPath, b)
		return imds
	}
	t.Run("no identity", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, azuretest.StartIMDS(t), 0), "status 400: invalid_request: Identity not found")
	})
	t.Run("huge response", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, body(t, `{"access_token":"`+strings.Repeat("a", 1<<20)+`"}`), 0), "larger than 32768 bytes")
	})
	t.Run("huge token", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, body(t, `{"access_token":"`+strings.Repeat("a", MaxTokenSize+1)+`"}`), 0), "larger than 16384 bytes")
	})
	t.Run("not JSON", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, body(t, `<html>`), 0), "not JSON")
	})
	t.Run("no token", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, body(t, `{"token_type":"Bearer"}`), 0), "no access token")
	})
	t.Run("not a JWT", func(t *testing.T) {
		require.ErrorContains(t, fetch(t, body(t, `{"access_token":"opaque"}`), 0), "not a JWT")
	})
	t.Run("never answers", func(t *testing.T) {
		imds := azuretest.StartIMDS(t)
		imds.SetToken(func(string) string { return k0.Sign(t, claims()) })
		imds.SetHang(azuretest.TokenPath)
		err := fetch(t, imds, 300*time.Millisecond)
		require.ErrorContains(t, err, "fetching a token")
		require.Positive(t, imds.HungCalls())
	})
	t.Run("nothing listens", func(t *testing.T) {
		imds := azuretest.StartIMDS(t)
		imds.Close()
		require.Error(t, fetch(t, imds, 2*time.Second))
	})
	t.Run("cancelled", func(t *testing.T) {
		imds := azuretest.StartIMDS(t)
		c, err := NewClient(ClientConfig{Endpoint: imds.URL})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = c.Payload(ctx)
		require.True(t, errors.Is(err, context.Canceled), "%v", err)
	})
	t.Run("redirect not followed", func(t *testing.T) {
		imds := azuretest.StartIMDS(t)
		imds.SetToken(func(string) string { return k0.Sign(t, claims()) })
		red := httptest.NewServer(http.RedirectHandler(imds.URL+azuretest.TokenPath+"?api-version=2018-02-01&resource=x", http.StatusFound))
		defer red.Close()
		c, err := NewClient(ClientConfig{Endpoint: red.URL})
		require.NoError(t, err)
		_, err = c.Payload(t.Context())
		require.ErrorContains(t, err, "status 302")
		require.Zero(t, imds.Requests())
	})
}
