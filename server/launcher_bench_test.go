package server_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// BenchmarkLaunchToSVID measures the time from a launch request on the
// launcher socket to the sandbox holding a verified SVID: the launch
// (entry written), the sandbox's key and CSR (X509) and the redemption
// over HTTPS at the token exchange endpoint (a kept-alive connection),
// and the SVID's verification against the bundle.
func BenchmarkLaunchToSVID(b *testing.B) {
	noLimits := func(c *server.Config) {
		// The limits would measure themselves.
		c.Launcher.Service.Rate, c.Launcher.Service.Burst = 1e6, 1e6
		c.TokenExchange.Endpoint.Rate, c.TokenExchange.Endpoint.Burst = 1e6, 1e6
	}
	b.Run("memstore", func(b *testing.B) { benchLaunchToSVID(b, startLaunchServer(b, noLimits)) })
	b.Run("sqlite", func(b *testing.B) {
		dir := b.TempDir()
		benchLaunchToSVID(b, startLaunchServerWith(b, func(cfg server.Config) *nodetest.Server {
			return nodetest.StartServerIn(b, dir, cfg)
		}, noLimits))
	})
}

func benchLaunchToSVID(b *testing.B, s *launchServer) {
	b.Run("x509", func(b *testing.B) {
		for b.Loop() {
			_, handle := s.launch(b, "/sandbox/bench", `, "ttl": "5m"`)
			a := s.redeem(b, handle, newECKey(b), "")
			require.Equal(b, http.StatusOK, a.status)
			s.verifyChain(b, a.resp.AccessToken)
		}
	})
	b.Run("jwt", func(b *testing.B) {
		for b.Loop() {
			_, handle := s.launch(b, "/sandbox/bench", `, "ttl": "5m"`)
			a := s.redeem(b, handle, nil, "https://api.example.com")
			require.Equal(b, http.StatusOK, a.status)
			_, err := jwtsvid.ParseAndValidate(a.resp.AccessToken, s.Bundle().JWTBundle(), []string{"https://api.example.com"})
			require.NoError(b, err)
		}
	})
}
