package azuretest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"
)

// KeysPath is the path of a tenant's JWKS below an Entra stand-in's URL,
// "{tenant}" standing for the tenant ID, as Microsoft Entra ID serves it.
const KeysPath = "/{tenant}/discovery/v2.0/keys"

// Entra is a running stand-in for Microsoft Entra ID's key endpoint: it
// serves each tenant's JWKS at KeysPath, and 400 with Entra's error for a
// tenant it does not know.
type Entra struct {
	*httptest.Server

	mu      sync.Mutex
	keys    map[string][]*Key
	body    map[string]string
	fetches atomic.Int32
}

// StartEntra runs an Entra stand-in on a loopback port until the test ends.
func StartEntra(t testing.TB) *Entra {
	t.Helper()
	e := &Entra{keys: map[string][]*Key{}, body: map[string]string{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

// KeysURL is the URL template of the tenants' JWKS, for the server under
// test.
func (e *Entra) KeysURL() string { return e.URL + KeysPath }

// SetKeys makes keys the JWKS of tenant.
func (e *Entra) SetKeys(tenant string, keys ...*Key) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys[tenant] = keys
}

// SetBody makes the JWKS of tenant body, whatever it is.
func (e *Entra) SetBody(tenant, body string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.body[tenant] = body
}

// Fetches is the number of JWKS requests served.
func (e *Entra) Fetches() int { return int(e.fetches.Load()) }

func (e *Entra) serve(w http.ResponseWriter, r *http.Request) {
	tenant, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/discovery/v2.0/keys")
	e.mu.Lock()
	keys, known := e.keys[tenant]
	body, fixed := e.body[tenant]
	e.mu.Unlock()
	if !ok || strings.Contains(tenant, "/") || (!known && !fixed) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant '" + tenant + "' not found."})
		return
	}
	e.fetches.Add(1)
	if fixed {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Write([]byte(body))
		return
	}
	var set jose.JSONWebKeySet
	for _, k := range keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.Private.PublicKey, KeyID: k.ID, Use: "sig", Algorithm: string(jose.RS256)})
	}
	writeJSON(w, http.StatusOK, set)
}

// Key is a signing key of Entra's.
type Key struct {
	ID      string
	Private *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	rsaKeys  [3]*rsa.PrivateKey
)

// NewKey returns test key i (0 to 2, RSA-2048, made once per test binary)
// under key ID id.
func NewKey(i int, id string) *Key {
	keysOnce.Do(func() {
		for j := range rsaKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys[j] = k
		}
	})
	return &Key{ID: id, Private: rsaKeys[i]}
}

// Sign returns an RS256 JWT of claims, with k's key ID in its header.
func (k *Key) Sign(t testing.TB, claims any) string {
	t.Helper()
	return k.SignWithHeader(t, map[string]any{"typ": "JWT", "alg": "RS256", "kid": k.ID, "x5t": k.ID}, claims)
}

// SignWithHeader returns a JWT of header and claims, signed with RS256
// whatever the header says.
func (k *Key) SignWithHeader(t testing.TB, header map[string]any, claims any) string {
	t.Helper()
	signing := Encode(t, header) + "." + Encode(t, claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k.Private, crypto.SHA256, digest[:])
	require.NoError(t, err)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// Encode returns the base64url JSON of v, a part of a JWT.
func Encode(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

// MSIClaims returns the claims of a managed identity's access token as
// Entra issues them (a v1 token, as the metadata service hands out), for
// resource, valid from an hour ago for a day. mirid, the identity's Azure
// resource ID (xms_mirid), is left out if empty.
func MSIClaims(tenant, principal, resource, mirid string) map[string]any {
	now := time.Now()
	c := map[string]any{
		"aud":   resource,
		"iss":   "https://sts.windows.net/" + tenant + "/",
		"iat":   now.Add(-time.Hour).Unix(),
		"nbf":   now.Add(-time.Hour).Unix(),
		"exp":   now.Add(23 * time.Hour).Unix(),
		"aio":   "k2BgYJh5xW3v",
		"appid": "9a5ae4b2-33f5-4a52-b8a0-0e8ec0d3a11f",
		"idp":   "https://sts.windows.net/" + tenant + "/",
		"oid":   principal,
		"sub":   principal,
		"tid":   tenant,
		"uti":   "Hk3sTzL0V0yWz9cYb8QAAA",
		"ver":   "1.0",
	}
	if mirid != "" {
		c["xms_mirid"] = mirid
	}
	return c
}

// VMResourceID returns the Azure resource ID of a VM, as xms_mirid holds
// it for a system-assigned identity.
func VMResourceID(subscription, group, name string) string {
	return "/subscriptions/" + subscription + "/resourcegroups/" + group + "/providers/Microsoft.Compute/virtualMachines/" + name
}
