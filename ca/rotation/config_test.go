package rotation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no trust domain", Config{}},
		{"negative TTL", Config{TrustDomain: td, X509SVIDTTL: -1}},
		{"CA shorter than SVID", Config{TrustDomain: td, CATTL: time.Hour, X509SVIDTTL: 2 * time.Hour}},
		{"JWT key shorter than SVID", Config{TrustDomain: td, JWTKeyTTL: time.Minute}},
		{"prepare after activate", Config{TrustDomain: td, PrepareFraction: 0.9, ActivateFraction: 0.8}},
		{"activate at end", Config{TrustDomain: td, ActivateFraction: 1}},
		{"negative prepare", Config{TrustDomain: td, PrepareFraction: -0.1}},
		{"bad X.509 algorithm", Config{TrustDomain: td, X509CAKeyAlgorithm: "ed448"}},
		{"bad JWT algorithm", Config{TrustDomain: td, JWTKeyAlgorithm: "hs256"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), tt.cfg)
			require.Error(t, err)
			require.ErrorContains(t, err, "rotation: ")
		})
	}
}

func TestKeyAlgorithms(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA key generation is slow")
	}
	clk := newClock(t0)
	m := newManager(t, Config{Now: clk.Now, X509CAKeyAlgorithm: ca.ECP384, JWTKeyAlgorithm: ca.RSA2048})
	assert.Equal(t, "RS256", m.JWTAuthority().Algorithm())
	assert.Equal(t, elliptic.P384(), m.X509Authority().Certificate().PublicKey.(*ecdsa.PublicKey).Curve)
	require.NoError(t, verifyAt(m, mintSVID(t, m, time.Minute), clk.Now()))
}
