package vault

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
)

// BenchmarkMintX509CA measures minting an intermediate through the local
// Vault stand-in over loopback HTTP: the sign-intermediate request (the
// stand-in signs with ECDSA P-256), the CA chain read, parsing and the
// checks, with a token already held.
func BenchmarkMintX509CA(b *testing.B) {
	for _, tt := range []struct {
		name string
		cfg  vaulttest.Config
	}{
		{"root", vaulttest.Config{}},
		{"intermediate+TLS", vaulttest.Config{Intermediate: true, TLS: true}},
	} {
		b.Run(tt.name, func(b *testing.B) {
			v := vaulttest.New(b, tt.cfg)
			c := newClient(b, v, Config{Auth: &TokenAuth{Token: v.NewToken(vaulttest.TokenParams{})}})
			csr, _ := newCSR(b)
			req := ca.X509CARequest{CSR: csr, TrustDomain: td, TTL: 24 * time.Hour}
			_, err := c.MintX509CA(b.Context(), req)
			require.NoError(b, err)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.MintX509CA(b.Context(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
