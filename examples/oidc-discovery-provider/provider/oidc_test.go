package provider_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// issuer is the iss of the JWT-SVIDs and of the discovery document, apart
// from the domain the provider is served under (localhost).
const issuer = "https://oidc.example.org/spiffe"

// shortDir returns a new directory with a path short enough for unix
// sockets, removed when the test ends.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "oidc")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// servingCert writes a self-signed certificate for localhost and
// 127.0.0.1 and its key to dir, and returns their paths and a pool
// trusting it.
func servingCert(t testing.TB, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	certPath, keyPath = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// runProvider runs the provider of config until the test ends and
// returns it serving, with its keys known.
func runProvider(t testing.TB, config string, log *slog.Logger) *provider.Server {
	t.Helper()
	cfg, err := provider.ParseConfig([]byte(config))
	require.NoError(t, err)
	p, err := provider.New(cfg, log)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done, "Run after cancel")
	})
	select {
	case <-p.Ready():
	case err := <-done:
		t.Fatalf("the provider stopped: %v", err)
	}
	select {
	case <-p.Keys().Ready():
	case <-time.After(nodetest.Timeout):
		t.Fatal("the provider got no keys")
	}
	return p
}

// kidOf returns the key ID in the header of a compact JWS.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	require.NoError(t, err)
	var h struct {
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal(raw, &h))
	return h.Kid
}

// waitKeys waits until the provider serves a key set for which ok holds.
func waitKeys(t *testing.T, p *provider.Server, what string, ok func(kids []string) bool) {
	t.Helper()
	require.Eventually(t, func() bool { return ok(p.Keys().KeyIDs()) }, nodetest.Timeout, 10*time.Millisecond, what)
}

// TestOIDCClientAcrossRotation: go-oidc discovers the provider (served
// over HTTPS under localhost, with an issuer of its own) and validates
// JWT-SVIDs an agent hands out, before, during and after a rotation of
// the JWT key: the new key is published before it signs, the old one
// stays while its tokens are valid, and a revoked one is gone. The keys
// come from the agent's Workload API or from the server's admin socket.
func TestOIDCClientAcrossRotation(t *testing.T) {
	for _, source := range []string{"workload_api", "server_api"} {
		t.Run(source, func(t *testing.T) {
			dir := shortDir(t)
			adminSock := filepath.Join(dir, "admin.sock")
			s := nodetest.StartServer(t, server.Config{JWTIssuer: issuer, AdminSocket: adminSock})
			a := nodetest.StartAgent(t, s.AgentConfig(t))
			s.Register(t, a.ID(), "/web")
			a.WaitEntries(t, 1)

			certPath, keyPath, pool := servingCert(t, dir)
			src := fmt.Sprintf(`"workload_api": {"socket_path": %q, "trust_domain": "example.org"}`, a.Addr)
			if source == "server_api" {
				src = fmt.Sprintf(`"server_api": {"address": "unix://%s", "poll_interval": "50ms"}`, adminSock)
			}
			var logs logtest.Buffer
			p := runProvider(t, fmt.Sprintf(`{"domains": ["localhost"], "jwt_issuer": %q, "log_level": "debug",
			  "serving_cert_file": {"cert_file_path": %q, "key_file_path": %q, "addr": "127.0.0.1:0"}, %s}`,
				issuer, certPath, keyPath, src), slog.New(slog.NewTextHandler(&logs, nil)))
			url := "https://localhost:" + portOf(t, p.Addr())

			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
			t.Cleanup(tr.CloseIdleConnections)
			ctx := oidc.ClientContext(t.Context(), &http.Client{Transport: tr, Timeout: nodetest.Timeout})
			discover := func() *oidc.Provider {
				t.Helper()
				op, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, issuer), url)
				require.NoError(t, err)
				return op
			}
			op := discover()
			var claims struct {
				JWKSURI string `json:"jwks_uri"`
			}
			require.NoError(t, op.Claims(&claims))
			assert.Equal(t, url+"/keys", claims.JWKSURI)

			wl, err := workloadapi.New(t.Context(), workloadapi.WithAddr(a.Addr))
			require.NoError(t, err)
			t.Cleanup(func() { wl.Close() })
			fetch := func(aud string) string {
				t.Helper()
				svid, err := wl.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: aud})
				require.NoError(t, err)
				return svid.Marshal()
			}
			verify := func(op *oidc.Provider, aud, token string) error {
				idt, err := op.Verifier(&oidc.Config{ClientID: aud}).Verify(ctx, token)
				if err == nil {
					assert.Equal(t, "spiffe://example.org/web", idt.Subject)
					assert.Equal(t, issuer, idt.Issuer)
				}
				return err
			}

			before := fetch("rp-1")
			oldKid := kidOf(t, before)
			require.NoError(t, verify(op, "rp-1", before))
			assert.ErrorContains(t, verify(op, "rp-other", before), "expected audience")

			// Prepared: published, not signing yet.
			prepared, err := s.Admin.PrepareAuthority(t.Context(), registry.AuthorityJWT)
			require.NoError(t, err)
			waitKeys(t, p, "the prepared key is published", func(k []string) bool { return slices.Contains(k, prepared.ID) })
			assert.Equal(t, oldKid, kidOf(t, fetch("rp-2")), "the prepared key signs nothing yet")

			// Activated: the new key signs; the old one still verifies.
			_, err = s.Admin.ActivateAuthority(t.Context(), registry.AuthorityJWT, prepared.ID)
			require.NoError(t, err)
			after := fetch("rp-3")
			require.Equal(t, prepared.ID, kidOf(t, after), "the activated key signs")
			require.NoError(t, verify(op, "rp-3", after), "a token of the new key")
			require.NoError(t, verify(op, "rp-1", before), "a token of the old key, still valid")
			require.NoError(t, verify(discover(), "rp-1", before), "a token of the old key, by a new client")
			assert.Contains(t, p.Keys().KeyIDs(), oldKid)

			// Revoked: the old key leaves the JWKS, and a client that
			// fetches it refuses its tokens.
			_, err = s.Admin.TaintAuthority(t.Context(), registry.AuthorityJWT, oldKid)
			require.NoError(t, err)
			_, err = s.Admin.RevokeAuthority(t.Context(), registry.AuthorityJWT, oldKid)
			require.NoError(t, err)
			waitKeys(t, p, "the revoked key is gone", func(k []string) bool { return !slices.Contains(k, oldKid) })
			assert.ErrorContains(t, verify(discover(), "rp-1", before), "failed to verify signature")
			require.NoError(t, verify(op, "rp-3", after))

			// A token signed by a key the trust domain never published.
			rogue, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: newKey(t), KeyID: prepared.ID})
			require.NoError(t, err)
			forged, err := rogue.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: spiffeid.RequireFromString("spiffe://example.org/web"),
				Audience: []string{"rp-3"}, Issuer: issuer})
			require.NoError(t, err)
			assert.ErrorContains(t, verify(op, "rp-3", forged), "failed to verify signature")
			assert.Contains(t, logs.String(), "JWKS updated")
		})
	}
}

func portOf(t testing.TB, addr net.Addr) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr.String())
	require.NoError(t, err)
	return port
}
