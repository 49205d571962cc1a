package main_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

// issuer is the jwt_issuer of both the server and the provider, apart
// from the domain the provider is served under.
const issuer = "https://oidc.example.org"

// buildProvider compiles the program into dir.
func buildProvider(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "oidc-discovery-provider")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/spiffekit/spiffekit/examples/oidc-discovery-provider").CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// writeCert writes a self-signed certificate of localhost and its key to
// dir and returns their paths and a pool trusting it.
func writeCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	k, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	cp, kp := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(cp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(kp, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), 0o600))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cp, kp, pool
}

// part decodes one part of a compact JWS.
func part(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

// TestOIDCProviderWithRealPrograms runs spiffe-server (with jwt_issuer and
// jti), spiffe-agent and the provider as processes: go-oidc discovers the
// provider over HTTPS and validates the JWT-SVIDs "spiffe-agent api fetch
// jwt" prints, across a rotation of the JWT key made with "spiffe-server
// authority jwt prepare/activate".
func TestOIDCProviderWithRealPrograms(t *testing.T) {
	e := progtest.NewEnv(t, "-jwt-issuer", issuer, "-jwt-svid-jti")
	e.StartServer()
	e.StartAgent(e.Token())
	e.Entry(e.AgentID(), "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))

	bin := buildProvider(t, e.Dir)
	certPath, keyPath, pool := writeCert(t, e.Dir)
	addr := progtest.FreePort(t)
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	conf := filepath.Join(e.Dir, "oidc.conf")
	require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `{
	  "log_level": "debug",
	  "domains": ["localhost"],
	  "jwt_issuer": %q,
	  "serving_cert_file": {"cert_file_path": %q, "key_file_path": %q, "addr": %q},
	  "workload_api": {"socket_path": %q, "trust_domain": "example.org"}
	}`, issuer, certPath, keyPath, addr, e.APISock), 0o600))
	p := progtest.Start(t, bin, "-config", conf)

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	url := "https://localhost:" + port
	progtest.WaitFor(t, "the provider to serve its keys", func() bool {
		resp, err := hc.Get(url + "/keys")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, p)

	ctx := oidc.ClientContext(t.Context(), hc)
	op, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, issuer), url)
	require.NoError(t, err)
	fetch := func(aud string) string {
		t.Helper()
		out := progtest.Must(t, e.AgentBin, "api", "fetch", "jwt", "-audience", aud, "-socket", e.APISock)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 2, out)
		require.Equal(t, "spiffe://example.org/web", lines[0])
		return lines[1]
	}
	verify := func(aud, token string) {
		t.Helper()
		idt, err := op.Verifier(&oidc.Config{ClientID: aud}).Verify(ctx, token)
		require.NoError(t, err)
		assert.Equal(t, "spiffe://example.org/web", idt.Subject)
		assert.Equal(t, issuer, idt.Issuer)
	}

	before := fetch("rp-1")
	verify("rp-1", before)
	jti, _ := part(t, before, 1)["jti"].(string)
	assert.Len(t, jti, 22, "the server was asked for a jti")

	var prepared struct {
		AuthorityID string `json:"authority_id"`
	}
	out := progtest.Must(t, e.ServerBin, "authority", "jwt", "prepare", "-output", "json", "-admin-socket", e.AdminSock)
	require.NoError(t, json.Unmarshal([]byte(out), &prepared), out)
	progtest.WaitFor(t, "the prepared key in the JWKS", func() bool {
		resp, err := hc.Get(url + "/keys")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if json.NewDecoder(resp.Body).Decode(&set) != nil {
			return false
		}
		for _, k := range set.Keys {
			if k.Kid == prepared.AuthorityID {
				return true
			}
		}
		return false
	}, p)
	assert.NotEqual(t, prepared.AuthorityID, part(t, fetch("rp-2"), 0)["kid"], "published, not signing yet")

	progtest.Must(t, e.ServerBin, "authority", "jwt", "activate", "-authorityID", prepared.AuthorityID, "-admin-socket", e.AdminSock)
	after := fetch("rp-3")
	require.Equal(t, prepared.AuthorityID, part(t, after, 0)["kid"], "the new key signs")
	verify("rp-3", after)
	verify("rp-1", before)

	assert.Equal(t, 0, p.Stop(t, syscall.SIGTERM), "a clean stop on SIGTERM")
	assert.Contains(t, p.Output(), "provider stopped")
}
