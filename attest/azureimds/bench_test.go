package azureimds

import (
	"crypto/x509"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/azuretest"
)

// BenchmarkVerify measures the server's verifications per second of an
// attested document as an agent sends it: base64, the PKCS #7 parse, the
// signer resolved and its chain verified to the root (the intermediate
// configured, nothing fetched), the RSA-2048 SHA-256 signature, the
// content; on all cores. A whole attestation adds the nonce's round trip
// and the metadata service's signing.
func BenchmarkVerify(b *testing.B) {
	ca := azuretest.NewCA(b, "metadata.azure.com")
	srv := serverFor(b, ca, func(c *ServerConfig) {
		c.IssuerHosts = []string{}
		c.Intermediates = []*x509.Certificate{ca.Intermediate}
	})
	sig := ca.Sign(b, azuretest.Document(b, "ABC", testVM, testSub))
	_, err := srv.verify(b.Context(), sig)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := srv.verify(b.Context(), sig); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}
