package vault

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// clock is a settable time shared by the fake Vault and the client.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

// newCSR returns a CSR for a new CA of td, as ca/rotation makes it.
func newCSR(t testing.TB) ([]byte, crypto.Signer) {
	t.Helper()
	key := newKey(t)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{td.ID().URL()}}, key)
	require.NoError(t, err)
	return der, key
}

// writeFile writes data into a new file of the test's directory.
func writeFile(t testing.TB, name string, data []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, perm))
	return p
}

// newClient makes a client of v with auth, the Vault's TLS certificate
// trusted when it has one.
func newClient(t testing.TB, v *vaulttest.Server, cfg Config) *Client {
	t.Helper()
	cfg.Address = v.URL()
	if c := v.CACertificate(); c != nil && cfg.CACertFile == "" {
		cfg.CACertFile = writeFile(t, "vault-ca.pem", pemutil.EncodeCertificates([]*x509.Certificate{c}), 0o644)
	}
	c, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// clientCert makes a client certificate for cert auth, and its CA.
func clientCert(t testing.TB) (ca *x509.Certificate, certFile, keyFile string) {
	t.Helper()
	caKey, key := newKey(t), newKey(t)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, caKey.Public(), caKey)
	require.NoError(t, err)
	ca, err = x509.ParseCertificate(der)
	require.NoError(t, err)
	der, err = x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "spiffe-server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, key.Public(), caKey)
	require.NoError(t, err)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	certFile = writeFile(t, "client.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	keyFile = writeFile(t, "client.key", keyPEM, 0o600)
	return ca, certFile, keyFile
}

// checkMinted checks resp against what v signed for key.
func checkMinted(t *testing.T, v *vaulttest.Server, resp ca.X509CAResponse, key crypto.Signer, now time.Time) {
	t.Helper()
	require.Len(t, resp.Roots, 1)
	assert.Equal(t, v.Root().Raw, resp.Roots[0].Raw, "the root of the mount's chain")
	require.NotEmpty(t, resp.Chain)
	newCA := resp.Chain[0]
	assert.True(t, newCA.PublicKey.(*ecdsa.PublicKey).Equal(key.Public()))
	assert.True(t, newCA.IsCA)
	require.Len(t, newCA.URIs, 1)
	assert.Equal(t, td.IDString(), newCA.URIs[0].String())
	assert.Empty(t, newCA.DNSNames, "the common name stays out of the SANs")
	assert.Equal(t, []string{"SPIFFE"}, newCA.Subject.Organization)
	inter := x509.NewCertPool()
	for _, c := range resp.Chain[1:] {
		inter.AddCert(c)
	}
	roots := x509.NewCertPool()
	roots.AddCert(v.Root())
	_, err := newCA.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	require.NoError(t, err)
	if v.Issuer() != v.Root() {
		require.Len(t, resp.Chain, 2, "the new CA, then the mount's intermediate")
		assert.Equal(t, v.Issuer().Raw, resp.Chain[1].Raw)
	} else {
		assert.Len(t, resp.Chain, 1, "the root travels in the bundle only")
	}
}

func TestMintX509CA(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the servers and clients close
	for _, srv := range []struct {
		name string
		cfg  vaulttest.Config
	}{
		{"root issuer", vaulttest.Config{}},
		{"intermediate issuer over TLS in a namespace", vaulttest.Config{Intermediate: true, TLS: true, Namespace: "ns1/team", PKIMount: "pki/spiffe"}},
	} {
		for _, method := range []string{"token", "approle", "kubernetes", "cert"} {
			t.Run(srv.name+"/"+method, func(t *testing.T) {
				clk := newClock()
				vcfg := srv.cfg
				vcfg.Now = clk.Now
				if method == "cert" {
					vcfg.TLS = true
				}
				v := vaulttest.New(t, vcfg)
				mount := cmp.Or(vcfg.PKIMount, "pki")
				cfg := Config{Namespace: srv.cfg.Namespace, PKIMount: "/" + srv.cfg.PKIMount + "/", Now: clk.Now}
				switch method {
				case "token":
					cfg.Auth = &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{TTL: time.Hour, Renewable: true})}
				case "approle":
					v.AddAppRole("approle", "role-1", "secret-1", vaulttest.TokenParams{TTL: time.Hour})
					cfg.Auth = &AppRoleAuth{RoleID: "role-1", SecretID: "secret-1"}
				case "kubernetes":
					v.AddKubernetesRole("k8s-east", "spire", "eyJ.sa.token", vaulttest.TokenParams{TTL: time.Hour})
					cfg.Auth = &KubernetesAuth{Mount: "k8s-east", Role: "spire", TokenFile: writeFile(t, "token", []byte("eyJ.sa.token\n"), 0o600)}
				case "cert":
					caCert, certFile, keyFile := clientCert(t)
					v.AddCertRole("cert", "spire", caCert, vaulttest.TokenParams{TTL: time.Hour})
					cfg.Auth = &CertAuth{Role: "spire", CertFile: certFile, KeyFile: keyFile}
				}
				c := newClient(t, v, cfg)
				csr, key := newCSR(t)
				resp, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: 6 * time.Hour})
				require.NoError(t, err)
				checkMinted(t, v, resp, key, clk.Now())
				assert.WithinDuration(t, clk.Now().Add(6*time.Hour), resp.Chain[0].NotAfter, 0, "the TTL asked for")

				// Without a TTL, Vault's default; the same login serves.
				resp, err = c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
				require.NoError(t, err)
				checkMinted(t, v, resp, key, clk.Now())
				assert.Equal(t, 2, v.Requests(mount+"/root/sign-intermediate"))
				assert.LessOrEqual(t, v.Requests("auth/token/lookup-self")+v.Requests("auth/approle/login")+
					v.Requests("auth/k8s-east/login")+v.Requests("auth/cert/login"), 1, "one login")
			})
		}
	}
}

// TestMintX509CACappedByIssuer: Vault truncates the lifetime at its
// issuer's expiry; the answer is taken as it is.
func TestMintX509CACappedByIssuer(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{Intermediate: true})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
	csr, _ := newCSR(t)
	resp, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: 700 * time.Hour})
	require.NoError(t, err)
	assert.False(t, resp.Chain[0].NotAfter.After(v.Issuer().NotAfter))
}

func TestNew(t *testing.T) {
	caFile := writeFile(t, "ca.pem", pemutil.EncodeCertificates([]*x509.Certificate{vaulttest.New(t, vaulttest.Config{TLS: true}).CACertificate()}), 0o644)
	junk := writeFile(t, "junk", []byte("junk"), 0o600)
	_, certFile, keyFile := clientCert(t)
	openKey := writeFile(t, "open.key", []byte("x"), 0o644)
	require.NoError(t, os.Chmod(openKey, 0o644))
	token := &TokenAuth{Token: "hvs.x"}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{Auth: token}, "the address is missing"},
		{"bad address", Config{Address: "://x", Auth: token}, "bad address"},
		{"not http", Config{Address: "ftp://vault", Auth: token}, "is not an http or https URL"},
		{"no host", Config{Address: "https://", Auth: token}, "is not an http or https URL"},
		{"no auth", Config{Address: "https://vault"}, "no authentication method"},
		{"bad mount", Config{Address: "https://vault", Auth: token, PKIMount: "pki/../sys"}, "is not a mount path"},
		{"bad mount query", Config{Address: "https://vault", Auth: token, PKIMount: "pki?x=1"}, "is not a mount path"},
		{"no token", Config{Address: "https://vault", Auth: &TokenAuth{}}, "token auth: the token is missing"},
		{"no role ID", Config{Address: "https://vault", Auth: &AppRoleAuth{SecretID: "s"}}, "approle auth: the role ID is missing"},
		{"bad approle mount", Config{Address: "https://vault", Auth: &AppRoleAuth{Mount: "a//b", RoleID: "r"}}, "is not a mount path"},
		{"no k8s role", Config{Address: "https://vault", Auth: &KubernetesAuth{TokenFile: "/t"}}, "kubernetes auth: the role is missing"},
		{"no k8s token file", Config{Address: "https://vault", Auth: &KubernetesAuth{Role: "r"}}, "the service account token file is missing"},
		{"bad k8s mount", Config{Address: "https://vault", Auth: &KubernetesAuth{Mount: "..", Role: "r", TokenFile: "/t"}}, "is not a mount path"},
		{"no client cert", Config{Address: "https://vault", Auth: &CertAuth{KeyFile: keyFile}}, "cert auth: the client certificate or key file is missing"},
		{"bad cert mount", Config{Address: "https://vault", Auth: &CertAuth{Mount: "c d", CertFile: certFile, KeyFile: keyFile}}, "is not a mount path"},
		{"missing client cert", Config{Address: "https://vault", Auth: &CertAuth{CertFile: junk + "x", KeyFile: keyFile}}, "cannot read the client certificate"},
		{"client key open", Config{Address: "https://vault", Auth: &CertAuth{CertFile: certFile, KeyFile: openKey}}, "cannot read the client key"},
		{"bad client pair", Config{Address: "https://vault", Auth: &CertAuth{CertFile: junk, KeyFile: keyFile}}, "bad client certificate or key"},
		{"missing CA file", Config{Address: "https://vault", Auth: token, CACertFile: junk + "x"}, "cannot read CA certificates"},
		{"bad CA file", Config{Address: "https://vault", Auth: token, CACertFile: junk}, "cannot parse CA certificates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			require.ErrorContains(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "vault: "), err.Error())
		})
	}
	c, err := New(Config{Address: "https://vault", Auth: token, CACertFile: caFile})
	require.NoError(t, err, "connects to nothing")
	assert.Equal(t, DefaultPKIMount, c.mount)
	require.NoError(t, c.Close())
	a := &AppRoleAuth{RoleID: "r"}
	c, err = New(Config{Address: "http://vault", Auth: a})
	require.NoError(t, err)
	assert.Empty(t, a.Mount, "the caller's value is not changed")
	assert.Equal(t, DefaultAppRoleMount, c.auth.(*AppRoleAuth).Mount)
}

// TestNewIgnoresEnvironment: VAULT_TOKEN and VAULT_NAMESPACE, which
// Vault's client reads by itself, do not reach the requests.
func TestNewIgnoresEnvironment(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{})
	t.Setenv("VAULT_TOKEN", v.NewToken(vaulttest.TokenParams{}))
	t.Setenv("VAULT_NAMESPACE", "other")
	v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: time.Hour})
	c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "wrong"}})
	csr, _ := newCSR(t)
	_, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.ErrorContains(t, err, "vault: approle login: Vault answered 400: invalid role or secret ID")
	assert.Zero(t, v.Requests("pki/root/sign-intermediate"), "the environment's token was not used")
}

// TestMintX509CAChainWithoutRoot: a mount whose chain stops below a root
// Vault does not know is anchored at its last certificate, as an upstream
// CA file is.
func TestMintX509CAChainWithoutRoot(t *testing.T) {
	v := vaulttest.New(t, vaulttest.Config{Intermediate: true})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
	v.SetTamper(func(path string, resp map[string]any) {
		data := resp["data"].(map[string]any)
		switch path {
		case "pki/cert/ca_chain":
			data["certificate"] = vaulttest.PEM(v.Issuer())
		case "pki/root/sign-intermediate":
			data["certificate"] = strings.SplitAfter(data["certificate"].(string), "-----END CERTIFICATE-----")[0]
		}
	})
	csr, key := newCSR(t)
	resp, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.NoError(t, err)
	require.Len(t, resp.Roots, 1)
	assert.Equal(t, v.Issuer().Raw, resp.Roots[0].Raw, "the intermediate is the anchor")
	require.Len(t, resp.Chain, 1)
	assert.True(t, key.Public().(*ecdsa.PublicKey).Equal(resp.Chain[0].PublicKey))
}

// TestMintX509CAClockSkew: a Vault whose clock runs a few minutes ahead
// signs a CA that starts after now; it is taken, while one starting
// hours ahead is not.
func TestMintX509CAClockSkew(t *testing.T) {
	clk := newClock()
	vaultClock := &clock{now: clk.Now().Add(3 * time.Minute)}
	v := vaulttest.New(t, vaulttest.Config{Now: vaultClock.Now})
	c := newClient(t, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}, Now: clk.Now})
	csr, _ := newCSR(t)
	resp, err := c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.NoError(t, err)
	assert.True(t, resp.Chain[0].NotBefore.After(clk.Now()))
	vaultClock.Add(time.Hour)
	_, err = c.MintX509CA(t.Context(), ca.X509CARequest{CSR: csr, TrustDomain: td})
	require.ErrorContains(t, err, "does not chain to the mount's CA chain")
}
