package provider_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// bundleOf returns the JWT bundle of td holding the public keys by key ID.
func bundleOf(keys map[string]*ecdsa.PrivateKey) *jwtbundle.Bundle {
	m := make(map[string]crypto.PublicKey, len(keys))
	for kid, k := range keys {
		m[kid] = k.Public()
	}
	return jwtbundle.FromJWTAuthorities(td, m)
}

// handlerConfig is a checked configuration with plain HTTP on loopback.
func handlerConfig(t testing.TB, extra string) *provider.Config {
	t.Helper()
	cfg, err := provider.ParseConfig([]byte(`{"domains": ["oidc.example.org", "localhost", "::1"], ` + extra +
		`"insecure_addr": "127.0.0.1:0", "workload_api": {"socket_path": "/run/agent.sock", "trust_domain": "example.org"}}`))
	require.NoError(t, err)
	return cfg
}

func do(h http.Handler, method, target, host string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func discoveryOf(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var doc map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &doc))
	return doc
}

func TestDiscoveryDocument(t *testing.T) {
	keys := provider.NewKeySet(false)
	t.Run("issuer and JWKS URI of the request's host", func(t *testing.T) {
		h := provider.NewHandler(handlerConfig(t, ""), keys, slog.New(slog.DiscardHandler))
		doc := discoveryOf(t, do(h, "GET", provider.DiscoveryPath, "oidc.example.org", nil))
		assert.Equal(t, map[string]any{
			"issuer":                                "https://oidc.example.org",
			"jwks_uri":                              "https://oidc.example.org/keys",
			"authorization_endpoint":                "",
			"response_types_supported":              []any{"id_token"},
			"subject_types_supported":               []any{"public"},
			"id_token_signing_alg_values_supported": []any{"RS256", "ES256", "ES384", "PS256"},
		}, doc)
		doc = discoveryOf(t, do(h, "GET", provider.DiscoveryPath, "LOCALHOST:8443", nil))
		assert.Equal(t, "https://localhost:8443", doc["issuer"], "the port stays; the host is lowercased")
		doc = discoveryOf(t, do(h, "GET", provider.DiscoveryPath, "[::1]:8443", nil))
		assert.Equal(t, "https://[::1]:8443/keys", doc["jwks_uri"])
	})
	t.Run("configured issuer apart from the serving domain", func(t *testing.T) {
		h := provider.NewHandler(handlerConfig(t, `"jwt_issuer": "https://issuer.example.org/td", "jwks_uri": "https://cdn.example.org/keys",`), keys, nil)
		doc := discoveryOf(t, do(h, "GET", provider.DiscoveryPath, "oidc.example.org", nil))
		assert.Equal(t, "https://issuer.example.org/td", doc["issuer"])
		assert.Equal(t, "https://cdn.example.org/keys", doc["jwks_uri"])
	})
	t.Run("http only when allowed and served without TLS", func(t *testing.T) {
		h := provider.NewHandler(handlerConfig(t, `"allow_insecure_scheme": true,`), keys, nil)
		doc := discoveryOf(t, do(h, "GET", provider.DiscoveryPath, "localhost:8080", nil))
		assert.Equal(t, "http://localhost:8080", doc["issuer"])
		assert.Equal(t, "http://localhost:8080/keys", doc["jwks_uri"])
	})
	t.Run("HEAD has the headers only", func(t *testing.T) {
		h := provider.NewHandler(handlerConfig(t, ""), keys, nil)
		w := do(h, "HEAD", provider.DiscoveryPath, "localhost", nil)
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Empty(t, w.Body.String())
		assert.NotEqual(t, "0", w.Header().Get("Content-Length"))
	})
}

// Property: the documents are served for the configured domains only,
// whatever form the Host takes; every other request is refused without
// naming a host.
func TestDomainsAllowList(t *testing.T) {
	keys := provider.NewKeySet(false)
	require.NoError(t, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k1": newKey(t)})))
	h := provider.NewHandler(handlerConfig(t, ""), keys, nil)
	for _, host := range []string{"evil.example", "oidc.example.org.evil.example", "example.org", "127.0.0.1",
		"oidc.example.org.", "", "oidc.example.org:443:443", "[::2]:443", "xn--oidc.example.org"} {
		for _, path := range []string{provider.DiscoveryPath, provider.KeysPath} {
			w := do(h, "GET", path, host, nil)
			assert.Equal(t, http.StatusBadRequest, w.Code, "host %q, %s", host, path)
			assert.Equal(t, "domain is not allowed\n", w.Body.String())
		}
	}
	for _, host := range []string{"oidc.example.org", "OIDC.Example.Org:443", "localhost:1", "[::1]", "::1"} {
		assert.Equal(t, http.StatusOK, do(h, "GET", provider.KeysPath, host, nil).Code, "host %q", host)
	}
}

func TestMethodsAndPaths(t *testing.T) {
	h := provider.NewHandler(handlerConfig(t, ""), provider.NewKeySet(false), nil)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS"} {
		w := do(h, m, provider.DiscoveryPath, "localhost", nil)
		assert.Equal(t, http.StatusMethodNotAllowed, w.Code, m)
		assert.Equal(t, "GET, HEAD", w.Header().Get("Allow"))
	}
	for _, p := range []string{"/", "/keys/", "/.well-known/openid-configuration/x", "/KEYS"} {
		assert.Equal(t, http.StatusNotFound, do(h, "GET", p, "localhost", nil).Code, p)
	}
}

func TestKeys(t *testing.T) {
	keys := provider.NewKeySet(false)
	h := provider.NewHandler(handlerConfig(t, ""), keys, nil)

	w := do(h, "GET", provider.KeysPath, "localhost", nil)
	assert.Equal(t, http.StatusServiceUnavailable, w.Code, "no keys before the first bundle")
	select {
	case <-keys.Ready():
		t.Fatal("ready before the first bundle")
	default:
	}
	assert.Nil(t, keys.KeyIDs())

	k1, k2 := newKey(t), newKey(t)
	require.NoError(t, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2})))
	<-keys.Ready()
	assert.Equal(t, []string{"k1", "k2"}, keys.KeyIDs())

	w = do(h, "GET", provider.KeysPath, "localhost", nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	assert.Equal(t, "no-cache, no-store, must-revalidate", w.Header().Get("Cache-Control"))
	var set jose.JSONWebKeySet
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &set))
	require.Len(t, set.Keys, 2)
	assert.True(t, set.Key("k1")[0].Key.(*ecdsa.PublicKey).Equal(k1.Public()))
	assert.True(t, set.Key("k2")[0].Key.(*ecdsa.PublicKey).Equal(k2.Public()))
	assert.NotContains(t, w.Body.String(), `"use"`)
	assert.NotContains(t, w.Body.String(), `"d"`, "no private part")

	// Revalidation: the same set is not modified; a new one is.
	lastMod := w.Header().Get("Last-Modified")
	require.NotEmpty(t, lastMod)
	w = do(h, "GET", provider.KeysPath, "localhost", map[string]string{"If-Modified-Since": lastMod})
	assert.Equal(t, http.StatusNotModified, w.Code)
	require.NoError(t, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k1": k1, "k2": k2})))
	w = do(h, "GET", provider.KeysPath, "localhost", map[string]string{"If-Modified-Since": lastMod})
	assert.Equal(t, http.StatusNotModified, w.Code, "setting the same keys changes nothing")
	require.NoError(t, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k2": k2})))
	w = do(h, "GET", provider.KeysPath, "localhost", map[string]string{"If-Modified-Since": lastMod})
	assert.Equal(t, http.StatusOK, w.Code, "a change made within the same second is seen")
	assert.Equal(t, []string{"k2"}, keys.KeyIDs())

	t.Run("set_key_use", func(t *testing.T) {
		keys := provider.NewKeySet(true)
		require.NoError(t, keys.Set(bundleOf(map[string]*ecdsa.PrivateKey{"k1": k1})))
		w := do(provider.NewHandler(handlerConfig(t, ""), keys, nil), "GET", provider.KeysPath, "localhost", nil)
		var set jose.JSONWebKeySet
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &set))
		assert.Equal(t, "sig", set.Keys[0].Use)
	})
	t.Run("a bundle that cannot be encoded keeps the keys", func(t *testing.T) {
		bad := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"x": struct{}{}})
		assert.Error(t, keys.Set(bad))
		assert.Equal(t, []string{"k2"}, keys.KeyIDs())
	})
}

func TestLogRequests(t *testing.T) {
	var buf logtest.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := provider.NewHandler(handlerConfig(t, `"log_requests": true,`), provider.NewKeySet(false), log)
	do(h, "GET", "/keys?x=1", "evil.example", nil)
	assert.Contains(t, buf.String(), "msg=request method=GET host=evil.example path=/keys")
}
