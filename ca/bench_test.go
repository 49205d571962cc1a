package ca_test

import (
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
)

// BenchmarkMintX509SVID measures minting an X509-SVID for a P-256 key with a
// P-256 authority. Compare it with BenchmarkRawCreateCertificate, the bare
// crypto/x509 cost of an equivalent certificate with the same keys.
func BenchmarkMintX509SVID(b *testing.B) {
	authority, _ := newRoot(b, 0)
	pub := newP256(b).Public()
	params := ca.X509SVIDParams{PublicKey: pub, ID: mustID("spiffe://example.org/workload")}
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := authority.SignX509SVID(ctx, params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawCreateCertificate is the baseline for BenchmarkMintX509SVID:
// one x509.CreateCertificate of a prebuilt leaf template, nothing else.
func BenchmarkRawCreateCertificate(b *testing.B) {
	authority, key := newRoot(b, 0)
	root := authority.Certificate()
	pub := newP256(b).Public()
	uri, err := url.Parse("spiffe://example.org/workload")
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).Lsh(big.NewInt(1), 158),
		NotBefore:             testNow.Add(-10 * time.Second),
		NotAfter:              testNow.Add(time.Hour),
		SubjectKeyId:          make([]byte, 20),
		URIs:                  []*url.URL{uri},
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := x509.CreateCertificate(rand.Reader, tmpl, root, pub, key); err != nil {
			b.Fatal(err)
		}
	}
}
