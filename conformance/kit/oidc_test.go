package kit_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

func ecKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// serveTLS serves h over HTTPS (httptest's certificate for 127.0.0.1)
// and returns its URL and roots; configure changes the server's TLS
// configuration.
func serveTLS(t *testing.T, h http.Handler, configure ...func(*tls.Config)) (string, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the kit's TLS 1.1 handshakes fail on purpose
	srv.TLS = &tls.Config{}
	for _, c := range configure {
		c(srv.TLS)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv.URL, roots
}

// TestSpiffekitOIDCProvider runs the kit against spiffekit's OIDC
// discovery provider's handler, serving over HTTPS the keys of a JWT
// bundle that rotates after the first fetch of its JWKS (one key kept,
// one added): every MUST rule passes, and the kept key is seen unchanged.
func TestSpiffekitOIDCProvider(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	cfg, err := provider.ParseConfig([]byte(`{"domains": ["127.0.0.1"], "insecure_addr": "127.0.0.1:0",
		"workload_api": {"socket_path": "/run/agent.sock", "trust_domain": "example.org"}}`))
	require.NoError(t, err)
	keys := provider.NewKeySet(true)
	k1, k2 := ecKey(t), ecKey(t)
	require.NoError(t, keys.Set(jwtbundle.FromJWTAuthorities(exampleTD, map[string]crypto.PublicKey{"k1": k1.Public()})))
	h := provider.NewHandler(cfg, keys, nil)
	var jwksFetches atomic.Int32
	url, roots := serveTLS(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == provider.KeysPath && jwksFetches.Add(1) == 1 {
			assert.NoError(t, keys.Set(jwtbundle.FromJWTAuthorities(exampleTD, map[string]crypto.PublicKey{"k1": k1.Public(), "k2": k2.Public()})))
		}
	}))

	r, err := kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: url, Roots: roots, RotationWait: time.Minute, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	requireAllMustPass(t, r)
	for _, rule := range []string{"OIDC rule 1", "OIDC rule 2", "OIDC rule 3", "OIDC rule 4", "OIDC rule 5a", "OIDC rule 5b",
		"OIDC rule 6", "OIDC rule 7", "OIDC rule 8", "OIDC rule 9", "OIDC rule 11", "OIDC rule 12", "Bundle rule 12", "Bundle rule 16"} {
		assert.Equal(t, kit.Pass, r.Verdicts()[rule], rule)
	}
	assert.Len(t, r.ByRule("OIDC rule 12"), 1, "one key kept")
	assert.Len(t, r.ByRule("Bundle rule 16"), 3, "one key, then two")

	// The discovery document's own URL names the same issuer.
	r, err = kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: url + kit.DiscoveryPath, Roots: roots})
	require.NoError(t, err)
	requireAllMustPass(t, r)
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["OIDC rule 12"])
}

// oidcEndpoint is a discovery endpoint correct in every rule, to break
// one rule at a time.
type oidcEndpoint struct {
	doc       map[string]any
	keys      []map[string]any
	later     []map[string]any // served from the second JWKS fetch on, when set
	docType   string
	jwksType  string
	moved     bool   // the discovery document answers with a redirect to /moved
	jwksTo    string // when set, the JWKS answers with a 302 to this URL
	fetches   atomic.Int32
	jwksPath  string // the path jwks_uri names
	base      string // the server's URL
	issuerURL string
}

func newOIDCEndpoint(t *testing.T) *oidcEndpoint {
	t.Helper()
	k := ecKey(t)
	jwk := jose.JSONWebKey{Key: k.Public(), KeyID: "k1", Use: "sig", Algorithm: "ES256"}
	raw, err := jwk.MarshalJSON()
	require.NoError(t, err)
	var key map[string]any
	require.NoError(t, json.Unmarshal(raw, &key))
	return &oidcEndpoint{
		doc: map[string]any{
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		},
		keys:     []map[string]any{key},
		docType:  "application/json",
		jwksType: "application/jwk-set+json",
		jwksPath: "/keys",
	}
}

func (e *oidcEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case kit.DiscoveryPath, "/moved" + kit.DiscoveryPath:
		if e.moved && r.URL.Path == kit.DiscoveryPath {
			http.Redirect(w, r, "/moved"+kit.DiscoveryPath, http.StatusFound)
			return
		}
		doc := map[string]any{"issuer": e.issuerURL, "jwks_uri": e.base + e.jwksPath}
		for k, v := range e.doc {
			doc[k] = v
		}
		w.Header().Set("Content-Type", e.docType)
		json.NewEncoder(w).Encode(doc)
	case "/keys", "/keys2":
		if e.jwksTo != "" && r.URL.Path == "/keys" {
			http.Redirect(w, r, e.jwksTo, http.StatusFound)
			return
		}
		keys := e.keys
		if e.fetches.Add(1) > 1 && e.later != nil {
			keys = e.later
		}
		w.Header().Set("Content-Type", e.jwksType)
		json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	default:
		http.NotFound(w, r)
	}
}

// TestOIDCBroken runs the kit against discovery endpoints broken one rule
// at a time: each fails exactly the rule broken.
func TestOIDCBroken(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, tc := range []struct {
		name   string
		wait   bool
		break_ func(t *testing.T, e *oidcEndpoint)
		want   []string
	}{
		{"nothing", true, func(*testing.T, *oidcEndpoint) {}, nil},
		{"issuer mismatch", false, func(_ *testing.T, e *oidcEndpoint) { e.issuerURL += "/other" }, []string{"OIDC rule 3"}},
		{"document as text/plain", false, func(_ *testing.T, e *oidcEndpoint) { e.docType = "text/plain" }, []string{"OIDC rule 2"}},
		{"alg none advertised", false, func(_ *testing.T, e *oidcEndpoint) {
			e.doc["id_token_signing_alg_values_supported"] = []string{"RS256", "none"}
		}, []string{"OIDC rule 5a"}},
		{"no RS256", false, func(_ *testing.T, e *oidcEndpoint) {
			e.doc["id_token_signing_alg_values_supported"] = []string{"ES256"}
		}, []string{"OIDC rule 5b"}},
		{"no response types", false, func(_ *testing.T, e *oidcEndpoint) { delete(e.doc, "response_types_supported") }, []string{"OIDC rule 6"}},
		{"unknown subject type", false, func(_ *testing.T, e *oidcEndpoint) { e.doc["subject_types_supported"] = []string{"secret"} }, []string{"OIDC rule 7"}},
		{"JWKS missing", false, func(_ *testing.T, e *oidcEndpoint) { e.jwksPath = "/gone" }, []string{"OIDC rule 8"}},
		{"key without kid", false, func(_ *testing.T, e *oidcEndpoint) { delete(e.keys[0], "kid") }, []string{"Bundle rule 16"}},
		{"duplicate kid", false, func(_ *testing.T, e *oidcEndpoint) { e.keys = append(e.keys, e.keys[0]) }, []string{"Bundle rule 16"}},
		{"key without kty", false, func(_ *testing.T, e *oidcEndpoint) { delete(e.keys[0], "kty") }, []string{"Bundle rule 12"}},
		{"use enc", false, func(_ *testing.T, e *oidcEndpoint) { e.keys[0]["use"] = "enc" }, []string{"OIDC rule 9"}},
		{"alg of another key type", false, func(_ *testing.T, e *oidcEndpoint) { e.keys[0]["alg"] = "RS256" }, []string{"OIDC rule 10"}},
		{"private key member", false, func(t *testing.T, e *oidcEndpoint) {
			k := ecKey(t)
			raw, err := jose.JSONWebKey{Key: k, KeyID: "k1", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &e.keys[0]))
			require.Contains(t, e.keys[0], "d")
		}, []string{"OIDC rule 11"}},
		{"kid reused for another key", true, func(t *testing.T, e *oidcEndpoint) {
			raw, err := jose.JSONWebKey{Key: ecKey(t).Public(), KeyID: "k1", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
			require.NoError(t, err)
			var key map[string]any
			require.NoError(t, json.Unmarshal(raw, &key))
			e.later = []map[string]any{key}
		}, []string{"OIDC rule 12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newOIDCEndpoint(t)
			url, roots := serveTLS(t, e)
			e.base, e.issuerURL = url, url
			tc.break_(t, e)
			cfg := kit.OIDCConfig{URL: url + "/", Roots: roots}
			if tc.wait {
				cfg.RotationWait, cfg.PollInterval = time.Minute, 10*time.Millisecond
				if e.later == nil {
					// A rotation that keeps k1 unchanged and adds k2.
					raw, err := jose.JSONWebKey{Key: ecKey(t).Public(), KeyID: "k2", Use: "sig", Algorithm: "ES256"}.MarshalJSON()
					require.NoError(t, err)
					var key map[string]any
					require.NoError(t, json.Unmarshal(raw, &key))
					e.later = append([]map[string]any{e.keys[0]}, key)
				}
			}
			r, err := kit.CheckOIDC(t.Context(), cfg)
			require.NoError(t, err)
			assert.Equal(t, tc.want, r.FailedRules(), "%s", text(t, r))
			assert.Empty(t, deviations(r), "%s", text(t, r))
			if tc.wait {
				assert.Len(t, r.ByRule("OIDC rule 12"), 1)
			}
		})
	}
}

// TestOIDCTransport runs the kit against discovery endpoints whose
// transport is broken one way at a time (redirects, TLS versions, the JWK
// Set's Content-Type): each fails exactly the rule broken, or deviates
// from exactly the SHOULD.
func TestOIDCTransport(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	for _, tc := range []struct {
		name       string
		legacyTLS  bool
		break_     func(e *oidcEndpoint)
		failed     []string
		deviations []string
		passed     []string
	}{
		{name: "nothing", break_: func(*oidcEndpoint) {}, passed: []string{"OIDC rule 13", "OIDC rule 15", "OIDC rule 16"}},
		{name: "JWKS as application/json", break_: func(e *oidcEndpoint) { e.jwksType = "application/json; charset=utf-8" }, passed: []string{"OIDC rule 16"}},
		{name: "JWKS as text/plain", break_: func(e *oidcEndpoint) { e.jwksType = "text/plain" }, deviations: []string{"OIDC rule 16"}},
		{name: "JWKS without Content-Type", break_: func(e *oidcEndpoint) { e.jwksType = "" }, deviations: []string{"OIDC rule 16"}},
		{name: "discovery through a redirect", break_: func(e *oidcEndpoint) { e.moved = true }, failed: []string{"OIDC rule 13"}},
		{name: "JWKS redirected over https", break_: func(e *oidcEndpoint) { e.jwksTo = e.base + "/keys2" }, passed: []string{"OIDC rule 14"}},
		{name: "JWKS redirected to http", break_: func(e *oidcEndpoint) { e.jwksTo = plain.URL + "/keys" }, failed: []string{"OIDC rule 14"}},
		{name: "JWKS redirected in a loop", break_: func(e *oidcEndpoint) { e.jwksTo = e.base + "/keys" }, failed: []string{"OIDC rule 14"}},
		{name: "TLS 1.0 accepted", legacyTLS: true, break_: func(*oidcEndpoint) {}, failed: []string{"OIDC rule 15"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newOIDCEndpoint(t)
			var configure []func(*tls.Config)
			if tc.legacyTLS {
				configure = append(configure, func(c *tls.Config) { c.MinVersion = tls.VersionTLS10 })
			}
			url, roots := serveTLS(t, e, configure...)
			e.base, e.issuerURL = url, url
			tc.break_(e)
			r, err := kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: url, Roots: roots})
			require.NoError(t, err)
			assert.Equal(t, tc.failed, r.FailedRules(), "%s", text(t, r))
			assert.Equal(t, tc.deviations, deviations(r), "%s", text(t, r))
			for _, rule := range tc.passed {
				assert.Equal(t, kit.Pass, r.Verdicts()[rule], "%s: %s", rule, text(t, r))
			}
		})
	}
}

// TestOIDCLoopbackHTTP checks an endpoint over plain http on loopback:
// OIDC rule 4 does not apply to its URLs, and nothing fails. Without a
// rotation during the wait, OIDC rule 12 does not apply either.
func TestOIDCLoopbackHTTP(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	e := newOIDCEndpoint(t)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	e.base, e.issuerURL = srv.URL, srv.URL
	r, err := kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: srv.URL, RotationWait: 30 * time.Millisecond, PollInterval: 10 * time.Millisecond})
	require.NoError(t, err)
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["OIDC rule 4"])
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["OIDC rule 12"])
}

// TestOIDCRefusals: the kit refuses a URL it cannot use and an endpoint
// it cannot reach; a discovery document that is not one is a finding.
func TestOIDCRefusals(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, u := range []string{"", "ftp://example.org", "https://", "://x", "https://127.0.0.1:1"} {
		_, err := kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: u, Timeout: time.Second})
		assert.Error(t, err, u)
	}
	url, roots := serveTLS(t, http.NotFoundHandler())
	r, err := kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: url, Roots: roots})
	require.NoError(t, err)
	assert.Equal(t, []string{"OIDC rule 1"}, r.FailedRules())

	// A server the roots do not authenticate: refused.
	_, err = kit.CheckOIDC(t.Context(), kit.OIDCConfig{URL: url, Roots: x509.NewCertPool(), Timeout: 5 * time.Second})
	assert.Error(t, err)
}
