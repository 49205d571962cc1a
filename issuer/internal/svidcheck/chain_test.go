package svidcheck

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	webID = spiffeid.RequireFromPath(td, "/web")
)

func TestChain(t *testing.T) {
	root := testca.New(t, td)
	certs, key := root.NewLeaf(t, webID)
	chain := append(certs, root.Cert())
	e := registry.Entry{ID: "e1", SPIFFEID: webID}
	now := time.Now()
	require.NoError(t, Chain(e, key, chain, now))

	other := testca.New(t, td)
	otherCerts, otherKey := other.NewLeaf(t, webID)
	caLeaf, _ := root.NewLeaf(t, webID, testca.WithKey(key), testca.WithTemplate(func(c *x509.Certificate) {
		c.IsCA, c.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	}))
	noID, _ := root.NewLeaf(t, spiffeid.ID{})
	for name, tc := range map[string]struct {
		e     registry.Entry
		certs []*x509.Certificate
		now   time.Time
		want  string
	}{
		"only the leaf":       {e, certs[:1], now, "returned 1 certificates"},
		"a nil certificate":   {e, []*x509.Certificate{certs[0], nil}, now, "nil certificate"},
		"another identity":    {registry.Entry{ID: "e1", SPIFFEID: spiffeid.RequireFromPath(td, "/db")}, chain, now, "want spiffe://example.org/db"},
		"no SPIFFE ID":        {e, []*x509.Certificate{noID[0], root.Cert()}, now, "without a SPIFFE ID"},
		"another key":         {e, []*x509.Certificate{otherCerts[0], other.Cert()}, now, "another key"},
		"another CA":          {e, []*x509.Certificate{certs[0], other.Cert()}, now, "did not sign"},
		"expired":             {e, chain, certs[0].NotAfter, "expired"},
		"a CA as the leaf":    {e, []*x509.Certificate{caLeaf[0], root.Cert()}, now, "CA certificate"},
		"too long a chain":    {e, append(chain, make([]*x509.Certificate, 20)...), now, "at most"},
		"another key, signed": {e, []*x509.Certificate{otherCerts[0], root.Cert()}, now, "another key"},
	} {
		t.Run(name, func(t *testing.T) {
			require.ErrorContains(t, Chain(tc.e, key, tc.certs, tc.now), tc.want)
		})
	}
	// The leaf of the other CA certifies otherKey: for it, the chain is fine.
	require.NoError(t, Chain(e, otherKey, []*x509.Certificate{otherCerts[0], other.Cert()}, now))
}

func TestSaved(t *testing.T) {
	root := testca.New(t, td)
	certs, key := root.NewLeaf(t, webID)
	leaf := certs[0]
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	chain := [][]byte{leaf.Raw, root.Cert().Raw}
	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Cert()})
	e := registry.Entry{ID: "e1", SPIFFEID: webID}
	now := time.Now()
	require.NoError(t, Saved(e, chain, pkcs8, leaf.NotBefore, leaf.NotAfter, bundle, now))

	otherBundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{testca.New(t, td).Cert()})
	_, otherKey := root.NewLeaf(t, webID)
	otherPKCS8, err := x509.MarshalPKCS8PrivateKey(otherKey)
	require.NoError(t, err)
	for name, err := range map[string]error{
		"a certificate that does not parse": Saved(e, [][]byte{leaf.Raw, {1, 2}}, pkcs8, leaf.NotBefore, leaf.NotAfter, bundle, now),
		"a key that does not parse":         Saved(e, chain, []byte("secret"), leaf.NotBefore, leaf.NotAfter, bundle, now),
		"another key":                       Saved(e, chain, otherPKCS8, leaf.NotBefore, leaf.NotAfter, bundle, now),
		"other dates":                       Saved(e, chain, pkcs8, leaf.NotBefore.Add(time.Second), leaf.NotAfter, bundle, now),
		"another bundle":                    Saved(e, chain, pkcs8, leaf.NotBefore, leaf.NotAfter, otherBundle, now),
	} {
		require.Error(t, err, name)
		require.NotContains(t, err.Error(), "secret", name)
	}
	err = Saved(e, chain, []byte("secret"), leaf.NotBefore, leaf.NotAfter, bundle, now)
	require.EqualError(t, err, "the key does not parse")
	err = Saved(e, chain, pkcs8, leaf.NotBefore, leaf.NotAfter, otherBundle, now)
	require.ErrorContains(t, err, "does not verify with the bundle")
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	noSigner, err := x509.MarshalPKCS8PrivateKey(x25519)
	require.NoError(t, err)
	err = Saved(e, chain, noSigner, leaf.NotBefore, leaf.NotAfter, bundle, now)
	require.EqualError(t, err, "the key cannot sign")
	err = Saved(e, chain, pkcs8, leaf.NotBefore.Add(time.Second), leaf.NotAfter, bundle, now)
	require.EqualError(t, err, "its dates are not the leaf's")
}
