package azuremsi

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkAttest measures the server's verifications per second, each a
// whole Attest of one payload as an agent sends it (JSON, the JWS parse,
// the cached key's RS256 verification, the claims, the selectors), on all
// cores.
func BenchmarkAttest(b *testing.B) {
	e, k0, _ := entra(b)
	srv := newTestServer(b, e, ServerConfig{})
	payload := payloadOf(b, k0.Sign(b, claims()))
	_, err := srv.Attest(b.Context(), td, payload, nil)
	require.NoError(b, err)
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
}
