package awsiid

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/awstest"
)

// BenchmarkAttest measures the server's verifications per second, each a
// whole Attest of one payload as an agent sends it (JSON, base64, the
// PKCS #7 parse and RSA-2048 verification, or the RSA-SHA256 one, the
// document, the selectors), on all cores.
func BenchmarkAttest(b *testing.B) {
	aws := newSigner(b, 0, 1)
	doc := document(testAccount, testRegion, testInstance)
	for _, bc := range []struct {
		name    string
		payload Payload
	}{
		{"pkcs7", Payload{Document: doc, Signature: aws.Signature(b, doc), RSA2048: aws.PKCS7(b, doc)}},
		{"signature", Payload{Document: doc, Signature: aws.Signature(b, doc)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			srv, err := NewServer(ServerConfig{
				AccountIDs:            []string{testAccount},
				RSA2048Certificates:   certsOf(testRegion, aws),
				SignatureCertificates: certsOf(testRegion, aws),
			})
			require.NoError(b, err)
			payload := payloadOf(b, bc.payload)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := srv.Attest(b.Context(), td, payload, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
		})
	}
}

// BenchmarkAttestWithLookup measures whole attestations with the EC2 and
// IAM lookups on, against the local stand-in of the APIs on loopback (so
// the cost of the SDK's signing, the Query protocol's XML and the checks,
// not AWS's latency), on all cores.
func BenchmarkAttestWithLookup(b *testing.B) {
	f := &lookupFixture{api: awstest.Start(b), signer: newSigner(b, 0, 1)}
	doc := document(testAccount, testRegion, testInstance)
	f.payload = payloadOf(b, Payload{Document: doc, RSA2048: f.signer.PKCS7(b, doc)})
	f.api.AddInstance(instance())
	f.api.AddInstanceProfile(testProfile, testRole)
	srv, err := NewServer(ServerConfig{AccountIDs: []string{testAccount}, RSA2048Certificates: certsOf(testRegion, f.signer), Lookup: f.config()})
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := srv.Attest(b.Context(), td, f.payload, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "attestations/s")
}
