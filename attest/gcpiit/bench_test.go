package gcpiit

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/gcemdtest"
)

// BenchmarkAttest measures the server's verifications per second, each a
// whole Attest of a token as an agent sends it (the JWS parse, the key
// lookup in the cache, RS256 verification with a 2,048-bit key, the
// claims, the agent ID and selectors), on all cores.
func BenchmarkAttest(b *testing.B) {
	google := gcemdtest.NewKey(b, 0)
	srv, err := NewServer(ServerConfig{ProjectIDs: []string{testProject}, Keys: gcemdtest.JWKS(b, google)})
	require.NoError(b, err)
	payload := []byte(google.Sign(b, claims()))
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
