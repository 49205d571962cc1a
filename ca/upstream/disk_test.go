package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// writeFiles writes the certificate file (upstream CA, then the certificates
// above it) and the key file of u.
func writeFiles(t *testing.T, u *testca.CA) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "upstream.crt"), filepath.Join(dir, "upstream.key")
	certs := append([]*x509.Certificate{u.Cert()}, u.Chain()...)
	if u.Root() != u.Cert() {
		certs = append(certs[:1], u.Root())
	}
	require.NoError(t, os.WriteFile(certFile, pemutil.EncodeCertificates(certs), 0o644))
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(u.Key())
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	return certFile, keyFile
}

// csr returns a CSR for a new CA of td and its key's public half.
func csr(t *testing.T) []byte {
	t.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{td.ID().URL()},
	}, testca.NewECKey(t))
	require.NoError(t, err)
	return der
}

func TestDiskMintX509CA(t *testing.T) {
	root := testca.New(t, td)
	inter := root.NewIntermediate(t)
	certFile, keyFile := writeFiles(t, inter)
	now := time.Now()
	up, err := LoadDisk(DiskConfig{CertFile: certFile, KeyFile: keyFile, Now: func() time.Time { return now }})
	require.NoError(t, err)

	req := csr(t)
	resp, err := up.MintX509CA(t.Context(), ca.X509CARequest{CSR: req, TrustDomain: td, TTL: time.Hour})
	require.NoError(t, err)
	require.Len(t, resp.Chain, 3, "new CA, upstream CA, root")
	assert.Equal(t, inter.Cert().Raw, resp.Chain[1].Raw)
	assert.Equal(t, root.Cert().Raw, resp.Chain[2].Raw)
	require.Len(t, resp.Roots, 1, "the last certificate of the file is the root")
	assert.Equal(t, root.Cert().Raw, resp.Roots[0].Raw)

	newCA := resp.Chain[0]
	assert.True(t, newCA.IsCA)
	require.NoError(t, newCA.CheckSignatureFrom(inter.Cert()))
	parsed, err := x509.ParseCertificateRequest(req)
	require.NoError(t, err)
	assert.True(t, newCA.PublicKey.(*ecdsa.PublicKey).Equal(parsed.PublicKey), "the key of the CSR")
	require.Len(t, newCA.URIs, 1)
	assert.Equal(t, td.IDString(), newCA.URIs[0].String())

	// The lifetime is capped at the upstream CA's expiry.
	resp, err = up.MintX509CA(t.Context(), ca.X509CARequest{CSR: req, TrustDomain: td, TTL: 30 * 24 * time.Hour})
	require.NoError(t, err)
	assert.Equal(t, inter.Cert().NotAfter, resp.Chain[0].NotAfter)

	// Roots are a copy: changing them changes nothing for the next call.
	resp.Roots[0] = nil
	resp, err = up.MintX509CA(t.Context(), ca.X509CARequest{CSR: req, TrustDomain: td})
	require.NoError(t, err)
	assert.Equal(t, root.Cert().Raw, resp.Roots[0].Raw)
}

func TestDiskMintX509CAErrors(t *testing.T) {
	certFile, keyFile := writeFiles(t, testca.New(t, td))
	up, err := LoadDisk(DiskConfig{CertFile: certFile, KeyFile: keyFile})
	require.NoError(t, err)
	canceled, cancel := context.WithCancel(t.Context())
	cancel()

	tests := []struct {
		name string
		ctx  context.Context
		req  ca.X509CARequest
	}{
		{"no CSR", t.Context(), ca.X509CARequest{TrustDomain: td}},
		{"garbage CSR", t.Context(), ca.X509CARequest{CSR: []byte("junk"), TrustDomain: td}},
		{"other trust domain", t.Context(), ca.X509CARequest{CSR: csr(t), TrustDomain: spiffeid.RequireTrustDomainFromString("other.org")}},
		{"canceled", canceled, ca.X509CARequest{CSR: csr(t), TrustDomain: td}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := up.MintX509CA(tt.ctx, tt.req)
			require.ErrorContains(t, err, "upstream: ")
		})
	}
}

func TestLoadDiskErrors(t *testing.T) {
	certFile, keyFile := writeFiles(t, testca.New(t, td))
	other, _ := writeFiles(t, testca.New(t, td))
	junk := filepath.Join(t.TempDir(), "junk")
	require.NoError(t, os.WriteFile(junk, []byte("junk"), 0o600))
	shared := filepath.Join(t.TempDir(), "shared.key")
	data, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(shared, data, 0o644))
	require.NoError(t, os.Chmod(shared, 0o644))

	tests := []struct {
		name string
		cfg  DiskConfig
		want string
	}{
		{"missing", DiskConfig{}, "missing"},
		{"no cert file", DiskConfig{CertFile: junk + "x", KeyFile: keyFile}, "cannot read certificate"},
		{"bad cert", DiskConfig{CertFile: junk, KeyFile: keyFile}, "cannot parse certificate"},
		{"no key file", DiskConfig{CertFile: certFile, KeyFile: junk + "x"}, "cannot read key"},
		{"bad key", DiskConfig{CertFile: certFile, KeyFile: junk}, "cannot parse key"},
		{"key readable by others", DiskConfig{CertFile: certFile, KeyFile: shared}, "permissions"},
		{"key of another CA", DiskConfig{CertFile: other, KeyFile: keyFile}, "invalid CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadDisk(tt.cfg)
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, "upstream: ")
		})
	}
}
