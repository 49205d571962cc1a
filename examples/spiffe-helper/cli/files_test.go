package cli

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

func x509Config(t *testing.T, extra string) *Config {
	t.Helper()
	c, err := ParseConfig([]byte("svid_file_name = \"svid.pem\"\nsvid_key_file_name = \"key.pem\"\nsvid_bundle_file_name = \"bundle.pem\"\n" + extra))
	require.NoError(t, err)
	c.CertDir = t.TempDir()
	return c
}

func TestWriteX509(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root := testca.New(t, td)
	inter := root.NewIntermediate(t)
	svid := inter.NewSVID(t, "/web")
	hinted := inter.NewSVID(t, "/db")
	hinted.Hint = "db"
	other := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	x := &workloadapi.X509Context{
		SVIDs:   []*x509svid.SVID{svid, hinted},
		Bundles: x509bundle.NewSet(root.X509Bundle(), other.X509Bundle()),
	}
	now := time.Now()

	t.Run("defaults", func(t *testing.T) {
		c := x509Config(t, "")
		got, err := c.writeX509(x, now)
		require.NoError(t, err)
		assert.Equal(t, svid, got, "the default SVID")
		// The SVID file holds the leaf and its intermediate; the bundle
		// file the trust domain's roots only.
		certs := readCerts(t, c.path("svid.pem"))
		assert.Equal(t, svid.Certificates, certs)
		assert.Equal(t, []*x509.Certificate{root.Root()}, readCerts(t, c.path("bundle.pem")))
		assert.Equal(t, os.FileMode(0o644), mode(t, c.path("svid.pem")))
		assert.Equal(t, os.FileMode(0o644), mode(t, c.path("bundle.pem")))
		assert.Equal(t, os.FileMode(0o600), mode(t, c.path("key.pem")), "the key is private by default")
		// The files make an SVID that verifies against the bundle.
		loaded, err := x509svid.Load(c.path("svid.pem"), c.path("key.pem"))
		require.NoError(t, err)
		bundle, err := x509bundle.Load(td, c.path("bundle.pem"))
		require.NoError(t, err)
		id, _, err := x509svid.Verify(loaded.Certificates, bundle)
		require.NoError(t, err)
		assert.Equal(t, svid.ID, id)
		// A PKCS#8 key.
		data, err := os.ReadFile(c.path("key.pem"))
		require.NoError(t, err)
		block, _ := pem.Decode(data)
		require.Equal(t, "PRIVATE KEY", block.Type)
		_, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		require.NoError(t, err)
	})

	t.Run("intermediates to bundle, federated domains, hint, modes", func(t *testing.T) {
		c := x509Config(t, "add_intermediates_to_bundle = true\ninclude_federated_domains = true\nhint = \"db\"\ncert_file_mode = 0640\nkey_file_mode = 0400")
		got, err := c.writeX509(x, now)
		require.NoError(t, err)
		assert.Equal(t, hinted, got)
		assert.Equal(t, hinted.Certificates[:1], readCerts(t, c.path("svid.pem")))
		assert.Equal(t, []*x509.Certificate{root.Root(), inter.Cert(), other.Root()}, readCerts(t, c.path("bundle.pem")))
		assert.Equal(t, os.FileMode(0o640), mode(t, c.path("svid.pem")))
		assert.Equal(t, os.FileMode(0o400), mode(t, c.path("key.pem")))
		// Files of mode 0400 are replaced, not written into.
		_, err = c.writeX509(x, now)
		require.NoError(t, err)
	})

	t.Run("omit expired", func(t *testing.T) {
		c := x509Config(t, "omit_expired = true")
		_, err := c.writeX509(x, root.Root().NotAfter.Add(time.Second))
		require.NoError(t, err)
		assert.Empty(t, readCerts(t, c.path("bundle.pem")), "the expired root is left out")
		c.OmitExpired = false
		_, err = c.writeX509(x, root.Root().NotAfter.Add(time.Second))
		require.NoError(t, err)
		assert.Len(t, readCerts(t, c.path("bundle.pem")), 1)
	})

	for _, tt := range []struct {
		name  string
		c     func(*Config)
		x     *workloadapi.X509Context
		error string
	}{
		{"unknown hint", func(c *Config) { c.Hint = "nope" }, x, `no X509-SVID has the hint "nope"`},
		{"no SVID", nil, &workloadapi.X509Context{Bundles: x.Bundles}, "gave no X509-SVID"},
		{"no bundle", nil, &workloadapi.X509Context{SVIDs: x.SVIDs, Bundles: x509bundle.NewSet(other.X509Bundle())}, `no bundle for trust domain "example.org"`},
		{"no directory", func(c *Config) { c.CertDir = filepath.Join(c.CertDir, "none") }, x, "no such file or directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := x509Config(t, "")
			if tt.c != nil {
				tt.c(c)
			}
			_, err := c.writeX509(tt.x, now)
			require.ErrorContains(t, err, tt.error)
		})
	}
}

func TestWriteJWTBundles(t *testing.T) {
	c, err := ParseConfig([]byte(`jwt_bundle_file_name = "jwt.json"`))
	require.NoError(t, err)
	c.CertDir = t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	b := jwtbundle.New(td)
	require.NoError(t, b.AddJWTAuthority("k1", testca.NewECKey(t).Public()))
	require.NoError(t, c.writeJWTBundles(jwtbundle.NewSet(b)))
	assert.Equal(t, os.FileMode(0o600), mode(t, c.path("jwt.json")))

	// spiffe-helper's format: trust domain name to base64 of the JWK Set.
	data, err := os.ReadFile(c.path("jwt.json"))
	require.NoError(t, err)
	var doc map[string]string
	require.NoError(t, json.Unmarshal(data, &doc))
	require.Len(t, doc, 1)
	jwks, err := base64.StdEncoding.DecodeString(doc["example.org"])
	require.NoError(t, err)
	got, err := jwtbundle.Parse(td, jwks)
	require.NoError(t, err)
	assert.True(t, got.Equal(b))

	// A key the JWK encoder cannot take is an error, not a bad file.
	bad := jwtbundle.New(td)
	require.NoError(t, bad.AddJWTAuthority("k2", struct{}{}))
	require.ErrorContains(t, c.writeJWTBundles(jwtbundle.NewSet(bad)), `encoding the JWT bundle of "example.org"`)
}
