package x509bundle_test

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td  = spiffeid.RequireTrustDomainFromString("example.org")
	td2 = spiffeid.RequireTrustDomainFromString("example.com")
)

func newRoots(t *testing.T, n int) []*x509.Certificate {
	t.Helper()
	certs := make([]*x509.Certificate, n)
	for i := range certs {
		certs[i] = testca.New(t, td).Cert()
	}
	return certs
}

func TestNewIsEmpty(t *testing.T) {
	b := x509bundle.New(td)
	assert.Equal(t, td, b.TrustDomain())
	assert.True(t, b.Empty())
	assert.Empty(t, b.X509Authorities())
}

func TestFromX509Authorities(t *testing.T) {
	roots := newRoots(t, 2)
	in := []*x509.Certificate{roots[0], nil, roots[1], roots[0]}
	b := x509bundle.FromX509Authorities(td, in)
	// Nil entries and duplicates are dropped; the order of first sight stays.
	assert.Equal(t, roots, b.X509Authorities())

	// The bundle owns its slice: changing the input afterwards changes nothing.
	in[0] = roots[1]
	assert.Equal(t, roots, b.X509Authorities())
}

func TestAuthorityMethods(t *testing.T) {
	roots := newRoots(t, 3)
	b := x509bundle.New(td)

	b.AddX509Authority(roots[0])
	b.AddX509Authority(roots[0]) // no duplicate
	b.AddX509Authority(nil)      // ignored
	b.AddX509Authority(roots[1])
	assert.Equal(t, roots[:2], b.X509Authorities())
	assert.True(t, b.HasX509Authority(roots[1]))
	assert.False(t, b.HasX509Authority(roots[2]))
	assert.False(t, b.HasX509Authority(nil))

	// A certificate with the same DER but another pointer is the same authority.
	again, err := x509.ParseCertificate(roots[0].Raw)
	require.NoError(t, err)
	assert.True(t, b.HasX509Authority(again))

	// The returned slice is a copy.
	got := b.X509Authorities()
	got[0] = roots[2]
	assert.Equal(t, roots[:2], b.X509Authorities())

	b.RemoveX509Authority(again)
	b.RemoveX509Authority(roots[2]) // absent: no-op
	b.RemoveX509Authority(nil)
	assert.Equal(t, roots[1:2], b.X509Authorities())

	b.SetX509Authorities([]*x509.Certificate{roots[2], roots[2], nil, roots[0]})
	assert.Equal(t, []*x509.Certificate{roots[2], roots[0]}, b.X509Authorities())

	b.SetX509Authorities(nil)
	assert.True(t, b.Empty())
}

func TestRemoveDoesNotAlterEarlierCopies(t *testing.T) {
	roots := newRoots(t, 3)
	b := x509bundle.FromX509Authorities(td, roots)
	before := b.X509Authorities()
	b.RemoveX509Authority(roots[0])
	assert.Equal(t, roots, before)
	assert.Equal(t, roots[1:], b.X509Authorities())
}

func TestEqualAndClone(t *testing.T) {
	roots := newRoots(t, 2)
	a := x509bundle.FromX509Authorities(td, roots)
	reversed := x509bundle.FromX509Authorities(td, []*x509.Certificate{roots[1], roots[0]})

	tests := []struct {
		name  string
		a, b  *x509bundle.Bundle
		equal bool
	}{
		{"same pointer", a, a, true},
		{"clone", a, a.Clone(), true},
		{"order does not matter", a, reversed, true},
		{"other trust domain", a, x509bundle.FromX509Authorities(td2, roots), false},
		{"fewer authorities", a, x509bundle.FromX509Authorities(td, roots[:1]), false},
		{"other authorities", a, x509bundle.FromX509Authorities(td, newRoots(t, 2)), false},
		{"nil and non-nil", a, nil, false},
		{"both nil", nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.equal, tt.a.Equal(tt.b))
			assert.Equal(t, tt.equal, tt.b.Equal(tt.a))
		})
	}

	// A clone is independent of its original.
	c := a.Clone()
	c.RemoveX509Authority(roots[0])
	assert.Equal(t, roots, a.X509Authorities())
}

func TestParse(t *testing.T) {
	roots := newRoots(t, 2)
	pemBytes := pemutil.EncodeCertificates(roots)

	tests := []struct {
		name    string
		in      []byte
		want    []*x509.Certificate
		wantErr string
	}{
		{name: "two roots", in: pemBytes, want: roots},
		{name: "duplicate dropped", in: append(bytes.Clone(pemBytes), pemutil.EncodeCertificates(roots[:1])...), want: roots},
		{name: "empty input gives empty bundle", in: nil, want: nil},
		{name: "not PEM", in: []byte("hello"), wantErr: "x509bundle: cannot parse certificate: "},
		{name: "bad certificate", in: []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), wantErr: "x509bundle: cannot parse certificate: "},
		{name: "oversized", in: make([]byte, x509bundle.MaxBundleSize+1), wantErr: "x509bundle: bundle exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := x509bundle.Parse(td, tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, b)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, td, b.TrustDomain())
			assert.Equal(t, tt.want, b.X509Authorities())
		})
	}
}

func TestParseExampleRoot(t *testing.T) {
	// The certificate of the example document of bundle.md section F.
	b, err := x509bundle.Load(td, filepath.Join("testdata", "example.org.pem"))
	require.NoError(t, err)
	require.Len(t, b.X509Authorities(), 1)
	assert.Equal(t, "spiffe://example.org", b.X509Authorities()[0].URIs[0].String())
}

func TestParseRaw(t *testing.T) {
	roots := newRoots(t, 2)
	// Workload API bundles are concatenated DER (Bundle section D).
	der := append(bytes.Clone(roots[0].Raw), roots[1].Raw...)

	b, err := x509bundle.ParseRaw(td, der)
	require.NoError(t, err)
	assert.Equal(t, roots, b.X509Authorities())

	b, err = x509bundle.ParseRaw(td, nil)
	require.NoError(t, err)
	assert.True(t, b.Empty())

	_, err = x509bundle.ParseRaw(td, []byte{0x30, 0x01})
	require.ErrorContains(t, err, "x509bundle: cannot parse certificate: ")

	_, err = x509bundle.ParseRaw(td, make([]byte, x509bundle.MaxBundleSize+1))
	require.ErrorContains(t, err, "x509bundle: bundle exceeds")
}

func TestLoadAndRead(t *testing.T) {
	roots := newRoots(t, 1)
	path := filepath.Join(t.TempDir(), "bundle.pem")
	require.NoError(t, os.WriteFile(path, pemutil.EncodeCertificates(roots), 0o600))

	b, err := x509bundle.Load(td, path)
	require.NoError(t, err)
	assert.Equal(t, roots, b.X509Authorities())

	_, err = x509bundle.Load(td, filepath.Join(t.TempDir(), "missing.pem"))
	require.ErrorContains(t, err, "x509bundle: unable to load X.509 bundle file: ")
	require.ErrorIs(t, err, os.ErrNotExist)

	big := filepath.Join(t.TempDir(), "big.pem")
	require.NoError(t, os.WriteFile(big, make([]byte, x509bundle.MaxBundleSize+1), 0o600))
	_, err = x509bundle.Load(td, big)
	require.ErrorContains(t, err, "exceeds")

	b, err = x509bundle.Read(td, bytes.NewReader(pemutil.EncodeCertificates(roots)))
	require.NoError(t, err)
	assert.Equal(t, roots, b.X509Authorities())

	// Read stops after MaxBundleSize+1 bytes instead of buffering everything.
	_, err = x509bundle.Read(td, strings.NewReader(strings.Repeat("A", x509bundle.MaxBundleSize+1)))
	require.ErrorContains(t, err, "x509bundle: unable to read X.509 bundle: bundle exceeds")

	_, err = x509bundle.Read(td, errReader{})
	require.ErrorContains(t, err, "x509bundle: unable to read X.509 bundle: ")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, os.ErrClosed }

func TestMarshalRoundTrip(t *testing.T) {
	roots := newRoots(t, 2)
	b := x509bundle.FromX509Authorities(td, roots)
	out, err := b.Marshal()
	require.NoError(t, err)
	assert.Equal(t, pemutil.EncodeCertificates(roots), out)

	again, err := x509bundle.Parse(td, out)
	require.NoError(t, err)
	assert.True(t, b.Equal(again))

	empty, err := x509bundle.New(td).Marshal()
	require.NoError(t, err)
	assert.Empty(t, empty)
}

func TestBundleSource(t *testing.T) {
	b := x509bundle.New(td)
	var source x509bundle.Source = b

	got, err := source.GetX509BundleForTrustDomain(td)
	require.NoError(t, err)
	assert.Same(t, b, got)

	// Bundle rule 1: a bundle validates SVIDs of its own trust domain only.
	got, err = source.GetX509BundleForTrustDomain(td2)
	require.EqualError(t, err, `x509bundle: no X.509 bundle found for trust domain: "example.com"`)
	assert.Nil(t, got)
}

func TestBundleConcurrentUse(t *testing.T) {
	roots := newRoots(t, 4)
	b := x509bundle.New(td)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				b.AddX509Authority(roots[i])
				_ = b.X509Authorities()
				_ = b.HasX509Authority(roots[(i+1)%4])
				_ = b.Equal(b.Clone())
				_, _ = b.Marshal()
				b.RemoveX509Authority(roots[i])
				b.SetX509Authorities(roots[:i])
				_ = b.Empty()
			}
		})
	}
	wg.Wait()
}
