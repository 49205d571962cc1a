package testca_test

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestNewSVID(t *testing.T) {
	root := testca.New(t, td)
	svid := root.NewSVID(t, "/workload", "localhost", "example.test")

	assert.Equal(t, leafID, svid.ID)
	require.Len(t, svid.Certificates, 1)
	leaf := svid.Certificates[0]
	assert.Equal(t, []string{"localhost", "example.test"}, leaf.DNSNames)
	assert.Empty(t, root.NewSVID(t, "/workload").Certificates[0].DNSNames)

	// X509 rules 1, 4, 8, 9: the SVID passes x509svid's verification against
	// the CA's bundle.
	id, _, err := x509svid.Verify(svid.Certificates, root.X509Bundle())
	require.NoError(t, err)
	assert.Equal(t, leafID, id)

	// It also verifies as a web certificate against RootPool.
	_, err = leaf.Verify(x509.VerifyOptions{Roots: root.RootPool(), DNSName: "localhost"})
	require.NoError(t, err)

	cert := testca.TLSCertificate(svid)
	assert.Same(t, leaf, cert.Leaf)
	assert.Equal(t, svid.PrivateKey, cert.PrivateKey)
	assert.Equal(t, [][]byte{leaf.Raw}, cert.Certificate)
}

func TestNewSVIDChain(t *testing.T) {
	inter := testca.New(t, td).NewIntermediate(t)
	svid := inter.NewSVID(t, "/workload")
	require.Len(t, svid.Certificates, 2)
	assert.Same(t, inter.Cert(), svid.Certificates[1])
	assert.Len(t, testca.TLSCertificate(svid).Certificate, 2)
}

func TestNewSVIDBadPath(t *testing.T) {
	ft := &fatalTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		testca.New(t, td).NewSVID(ft, "no-leading-slash")
	}()
	assert.True(t, ft.failed)
}

func TestX509Source(t *testing.T) {
	root := testca.New(t, td)
	var zero testca.X509Source
	got, err := zero.GetX509SVID()
	require.NoError(t, err)
	assert.Nil(t, got)

	first, second := root.NewSVID(t, "/a"), root.NewSVID(t, "/b")
	src := testca.NewX509Source(first)
	got, err = src.GetX509SVID()
	require.NoError(t, err)
	assert.Same(t, first, got)
	src.Set(second)
	assert.Same(t, second, src.SVID())
}

// fatalTB records Fatalf and stops the calling function as testing.T does.
type fatalTB struct {
	testing.TB
	failed bool
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
