package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
)

// TestOIDC runs the oidc mode against spiffekit's OIDC discovery
// provider's handler over HTTPS, and its usage errors.
func TestOIDC(t *testing.T) {
	cfg, err := provider.ParseConfig([]byte(`{"domains": ["127.0.0.1"], "insecure_addr": "127.0.0.1:0",
		"workload_api": {"socket_path": "/run/agent.sock", "trust_domain": "example.org"}}`))
	require.NoError(t, err)
	keys := provider.NewKeySet(false)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	require.NoError(t, keys.Set(jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"k1": k.Public()})))
	srv := httptest.NewTLSServer(provider.NewHandler(cfg, keys, nil))
	t.Cleanup(srv.Close)
	roots := writeFile(t, "roots.pem", pemCerts(srv.Certificate()))

	code, out, errOut := runProgram(t, "", "oidc", "-url", srv.URL+provider.DiscoveryPath, "-roots", roots, "-timeout", "20s",
		"-rotation-wait", "50ms", "-poll-interval", "10ms")
	assert.Equal(t, exitPass, code, errOut)
	assert.Regexp(t, `PASS +OIDC rule 3 +MUST +issuer`, out)
	assert.Regexp(t, `NOT APPLICABLE +OIDC rule 12 +MUST +JWKS over time +the keys did not change`, out)

	for name, args := range map[string][]string{
		"no -url":       {"oidc"},
		"missing roots": {"oidc", "-url", srv.URL, "-roots", filepath.Join(t.TempDir(), "none")},
		"roots not PEM": {"oidc", "-url", srv.URL, "-roots", writeFile(t, "x", []byte("x"))},
		"untrusted":     {"oidc", "-url", srv.URL},
		"not a URL":     {"oidc", "-url", "example.org"},
	} {
		code, _, errOut := runProgram(t, "", args...)
		assert.Equal(t, exitCantRun, code, "%s: %s", name, errOut)
	}
}
