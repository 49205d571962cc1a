package rotation

import (
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
)

// BenchmarkX509SVID compares minting through the manager (template checks,
// lifetime cap, snapshot read) with a bare x509.CreateCertificate of a
// similar leaf. Run with -cpu 1,2 for per-core figures.
func BenchmarkX509SVID(b *testing.B) {
	m := newManager(b, Config{})
	pub := workloadKey(b).Public()
	params := ca.X509SVIDParams{PublicKey: pub, ID: workload}

	b.Run("manager", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := m.SignX509SVID(b.Context(), params); err != nil {
					b.Fatal(err)
				}
			}
		})
	})

	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		caKey, err := m.keys.Key(b.Context(), mustActive(b, m.X509CAs()).KeyID)
		if err != nil {
			b.Fatal(err)
		}
		parent := m.X509Authority().Certificate()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				tmpl := &x509.Certificate{
					SerialNumber:          randomSerial(b),
					NotBefore:             time.Now(),
					NotAfter:              time.Now().Add(time.Hour),
					URIs:                  []*url.URL{workload.URL()},
					BasicConstraintsValid: true,
					KeyUsage:              x509.KeyUsageDigitalSignature,
					ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
				}
				if _, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, caKey); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
