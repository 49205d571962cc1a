package x509svid_test

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func derOf(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

func pkcs8(t *testing.T, key crypto.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return der
}

// TestParse checks Parse and ParseRaw against the same cases: go-spiffe's
// Parse/ParseRaw checks (x509-svid.md section B, end) plus key/leaf match.
func TestParse(t *testing.T) {
	root := testca.New(t, td)
	inter := root.NewIntermediate(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	type svidIn struct {
		certs []*x509.Certificate
		key   crypto.PrivateKey
	}
	leaf := func(opts ...testca.Option) func(t *testing.T) svidIn {
		return func(t *testing.T) svidIn {
			c, k := root.NewLeaf(t, leafID, opts...)
			return svidIn{c, k}
		}
	}
	tests := []struct {
		name    string
		in      func(t *testing.T) svidIn
		wantErr string
	}{
		{name: "leaf only", in: leaf()},
		{
			name: "leaf and intermediate", // X509 rule 15
			in: func(t *testing.T) svidIn {
				c, k := inter.NewLeaf(t, leafID)
				return svidIn{c, k}
			},
		},
		{name: "RSA key", in: leaf(testca.WithKey(rsaKey))},
		{name: "Ed25519 key", in: leaf(testca.WithKey(edKey))},
		{
			name:    "leaf ID without path", // X509 rule 2
			in:      func(t *testing.T) svidIn { c, k := root.NewLeaf(t, tdOnlyID); return svidIn{c, k} },
			wantErr: "x509svid: certificate validation failed: leaf certificate SPIFFE ID must have a non-root path",
		},
		{
			name:    "leaf without key usage", // X509 rules 6, 8
			in:      leaf(tmpl(func(c *x509.Certificate) { c.KeyUsage = 0 })),
			wantErr: "x509svid: certificate validation failed: leaf certificate must have 'digitalSignature' set as key usage",
		},
		{
			name:    "leaf key usage keyEncipherment only", // X509 rule 8
			in:      leaf(tmpl(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })),
			wantErr: "x509svid: certificate validation failed: leaf certificate must have 'digitalSignature' set as key usage",
		},
		{
			name:    "leaf cA TRUE", // X509 rule 4
			in:      leaf(tmpl(func(c *x509.Certificate) { c.IsCA = true })),
			wantErr: "x509svid: certificate validation failed: leaf certificate must not have CA flag set to true",
		},
		{
			name:    "leaf keyCertSign", // X509 rule 8
			in:      leaf(tmpl(func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign })),
			wantErr: "x509svid: certificate validation failed: leaf certificate must not have 'keyCertSign' set as key usage",
		},
		{
			name:    "leaf cRLSign", // X509 rule 8
			in:      leaf(tmpl(func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCRLSign })),
			wantErr: "x509svid: certificate validation failed: leaf certificate must not have 'cRLSign' set as key usage",
		},
		{
			name:    "two URI SANs", // X509 rules 1, 16
			in:      leaf(tmpl(func(c *x509.Certificate) { c.URIs = uris(t, "spiffe://example.org/a", "spiffe://example.org/b") })),
			wantErr: "x509svid: certificate validation failed: cannot get leaf certificate SPIFFE ID: certificate contains more than one URI SAN",
		},
		{
			name:    "https URI SAN", // X509 rule 17
			in:      leaf(tmpl(func(c *x509.Certificate) { c.URIs = uris(t, "https://example.org/a") })),
			wantErr: "x509svid: certificate validation failed: cannot get leaf certificate SPIFFE ID: spiffeid: scheme is missing or invalid",
		},
		{
			name: "intermediate with cA FALSE", // X509 rule 4
			in: func(t *testing.T) svidIn {
				bad := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) { c.IsCA = false }))
				c, k := bad.NewLeaf(t, leafID)
				return svidIn{c, k}
			},
			wantErr: "x509svid: certificate validation failed: signing certificate must have CA flag set to true",
		},
		{
			name: "intermediate without keyCertSign", // X509 rule 7
			in: func(t *testing.T) svidIn {
				bad := root.NewIntermediate(t, tmpl(func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageCRLSign }))
				c, k := bad.NewLeaf(t, leafID)
				return svidIn{c, k}
			},
			wantErr: "x509svid: certificate validation failed: signing certificate must have 'keyCertSign' set as key usage",
		},
		{
			name: "key of another certificate",
			in: func(t *testing.T) svidIn {
				c, _ := root.NewLeaf(t, leafID)
				return svidIn{c, testca.NewECKey(t)}
			},
			wantErr: "x509svid: private key validation failed: leaf certificate does not match private key",
		},
		{
			name: "RSA key for an ECDSA leaf",
			in: func(t *testing.T) svidIn {
				c, _ := root.NewLeaf(t, leafID)
				return svidIn{c, rsaKey}
			},
			wantErr: "x509svid: private key validation failed: leaf certificate does not match private key",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in(t)
			keyDER := pkcs8(t, in.key)

			got, err := x509svid.ParseRaw(derOf(in.certs), keyDER)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
			} else {
				require.NoError(t, err)
				assert.Equal(t, leafID, got.ID)
				assert.Equal(t, in.certs, got.Certificates)
				// Keys are compared by value: the internal form of an RSA key
				// may differ between two equal keys.
				assert.True(t, in.key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(got.PrivateKey))

				certs, key, err := got.MarshalRaw()
				require.NoError(t, err)
				assert.Equal(t, derOf(in.certs), certs)
				assert.Equal(t, keyDER, key)
			}

			certPEM := pemutil.EncodeCertificates(in.certs)
			keyPEM, err := pemutil.EncodePKCS8PrivateKey(in.key)
			require.NoError(t, err)
			got, err = x509svid.Parse(certPEM, keyPEM)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, leafID, got.ID)
			certs, key, err := got.Marshal()
			require.NoError(t, err)
			assert.Equal(t, certPEM, certs)
			assert.Equal(t, keyPEM, key)

			src, err := got.GetX509SVID()
			require.NoError(t, err)
			assert.Same(t, got, src)
		})
	}
}

func TestParseMalformed(t *testing.T) {
	root := testca.New(t, td)
	chain, key := root.NewLeaf(t, leafID)
	certDER, keyDER := derOf(chain), pkcs8(t, key)
	certPEM := pemutil.EncodeCertificates(chain)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)

	_, err = x509svid.ParseRaw(certDER[:len(certDER)-1], keyDER)
	require.ErrorContains(t, err, "x509svid: cannot parse DER encoded certificate: ")
	_, err = x509svid.ParseRaw(certDER, keyDER[1:])
	require.ErrorContains(t, err, "x509svid: cannot parse DER encoded private key: ")
	_, err = x509svid.ParseRaw(nil, keyDER)
	require.EqualError(t, err, "x509svid: certificate validation failed: no certificates found")
	_, err = x509svid.ParseRaw(certDER, pkcs8(t, x25519))
	require.EqualError(t, err, "x509svid: private key validation failed: unsupported private key type *ecdh.PrivateKey")

	_, err = x509svid.Parse([]byte("not PEM"), keyPEM)
	require.ErrorContains(t, err, "x509svid: cannot parse PEM encoded certificate: ")
	_, err = x509svid.Parse(certPEM, []byte("not PEM"))
	require.ErrorContains(t, err, "x509svid: cannot parse PEM encoded private key: ")
	_, err = x509svid.Parse(certPEM, certPEM)
	require.ErrorContains(t, err, "x509svid: cannot parse PEM encoded private key: ")
}

func TestLoad(t *testing.T) {
	root := testca.New(t, td)
	chain, key := root.NewIntermediate(t).NewLeaf(t, leafID)
	certPEM := pemutil.EncodeCertificates(chain)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)

	dir := t.TempDir()
	certFile := filepath.Join(dir, "svid.pem")
	keyFile := filepath.Join(dir, "svid.key")
	bothFile := filepath.Join(dir, "both.pem")
	require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	require.NoError(t, os.WriteFile(bothFile, append(append([]byte{}, keyPEM...), certPEM...), 0o600))

	for _, files := range [][2]string{{certFile, keyFile}, {bothFile, bothFile}} {
		svid, err := x509svid.Load(files[0], files[1])
		require.NoError(t, err)
		assert.Equal(t, leafID, svid.ID)
		assert.Len(t, svid.Certificates, 2)
	}

	_, err = x509svid.Load(filepath.Join(dir, "missing"), keyFile)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "x509svid: cannot read certificate file: ")
	_, err = x509svid.Load(certFile, filepath.Join(dir, "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, "x509svid: cannot read key file: ")
}

func TestMarshalErrors(t *testing.T) {
	root := testca.New(t, td)
	chain, key := root.NewLeaf(t, leafID)

	empty := &x509svid.SVID{PrivateKey: key}
	_, _, err := empty.Marshal()
	require.EqualError(t, err, "x509svid: no certificates to marshal")
	_, _, err = empty.MarshalRaw()
	require.EqualError(t, err, "x509svid: no certificates to marshal")

	noKey := &x509svid.SVID{Certificates: chain}
	_, _, err = noKey.Marshal()
	require.ErrorContains(t, err, "x509svid: cannot encode private key: ")
	_, _, err = noKey.MarshalRaw()
	require.ErrorContains(t, err, "x509svid: cannot marshal private key: ")
}

// *SVID is a static Source.
var _ x509svid.Source = (*x509svid.SVID)(nil)
