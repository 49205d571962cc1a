package testca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td     = spiffeid.RequireTrustDomainFromString("example.org")
	leafID = spiffeid.RequireFromPath(td, "/workload")
)

func TestDefaults(t *testing.T) {
	root := testca.New(t, td)
	inter := root.NewIntermediate(t)
	chain, key := inter.NewLeaf(t, leafID)

	assert.Equal(t, td, root.TrustDomain())
	assert.Same(t, root.Cert(), root.Root())
	assert.Same(t, root.Cert(), inter.Root())
	assert.Empty(t, root.Chain())
	assert.Equal(t, []*x509.Certificate{inter.Cert()}, inter.Chain())
	assert.NotNil(t, root.Key())

	// X509 rules 4, 6, 7, 11: signing certificates.
	for _, ca := range []*x509.Certificate{root.Cert(), inter.Cert()} {
		assert.True(t, ca.IsCA)
		assert.True(t, ca.BasicConstraintsValid)
		assert.Equal(t, x509.KeyUsageCertSign|x509.KeyUsageCRLSign, ca.KeyUsage)
		require.Len(t, ca.URIs, 1)
		assert.Equal(t, "spiffe://example.org", ca.URIs[0].String())
	}

	// X509 rules 1, 4, 8, 9: the leaf.
	require.Len(t, chain, 2)
	leaf := chain[0]
	assert.Same(t, inter.Cert(), chain[1])
	assert.False(t, leaf.IsCA)
	assert.Equal(t, x509.KeyUsageDigitalSignature, leaf.KeyUsage)
	assert.ElementsMatch(t, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, leaf.ExtKeyUsage)
	require.Len(t, leaf.URIs, 1)
	assert.Equal(t, leafID.String(), leaf.URIs[0].String())
	assert.True(t, key.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey))

	// The chain verifies against the bundle's root.
	roots := x509.NewCertPool()
	for _, c := range root.X509Bundle().X509Authorities() {
		roots.AddCert(c)
	}
	inters := x509.NewCertPool()
	inters.AddCert(chain[1])
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters})
	require.NoError(t, err)
	assert.Equal(t, td, root.X509Bundle().TrustDomain())

	// Chain returns a copy.
	inter.Chain()[0] = nil
	assert.NotNil(t, inter.Chain()[0])
}

func TestOptions(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	root := testca.New(t, td, testca.WithTemplate(func(c *x509.Certificate) { c.MaxPathLen, c.MaxPathLenZero = 0, true }))
	assert.True(t, root.Cert().MaxPathLenZero)

	notAfter := time.Now().Add(-time.Minute).Truncate(time.Second)
	chain, key := root.NewLeaf(t, spiffeid.ID{},
		testca.WithKey(edKey),
		testca.WithTemplate(func(c *x509.Certificate) { c.KeyUsage = 0 }),
		testca.WithTemplate(func(c *x509.Certificate) { c.NotAfter = notAfter }),
	)
	leaf := chain[0]
	assert.Equal(t, edKey, key)
	assert.Empty(t, leaf.URIs, "a zero ID gives no URI SAN")
	assert.Zero(t, leaf.KeyUsage, "KeyUsage 0 omits the extension")
	assert.True(t, notAfter.Equal(leaf.NotAfter))
	assert.Equal(t, edKey.Public(), leaf.PublicKey)
}
