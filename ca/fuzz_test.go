package ca_test

import (
	"crypto"
	"crypto/x509"
	"testing"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/require"
)

// FuzzSignX509SVIDFromCSR feeds arbitrary bytes as a CSR (the one input of the
// package that comes straight from a requester). Rejection is fine; a panic
// is not, and an accepted request must yield a verifiable SVID for the
// caller's ID over exactly the request's public key, with none of the names
// the request asked for.
func FuzzSignX509SVIDFromCSR(f *testing.F) {
	authority, _ := newRoot(f, 0)
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{authority.Certificate()})
	id := mustID("spiffe://example.org/workload")
	f.Fuzz(func(t *testing.T, csr []byte) {
		chain, err := authority.SignX509SVID(t.Context(), ca.X509SVIDParams{CSR: csr, ID: id})
		if err != nil {
			return
		}
		req, err := x509.ParseCertificateRequest(csr)
		require.NoError(t, err)
		require.NoError(t, req.CheckSignature())
		leaf := chain[0]
		require.True(t, req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(leaf.PublicKey))
		require.Len(t, leaf.URIs, 1)
		require.Equal(t, id.String(), leaf.URIs[0].String())
		require.Empty(t, leaf.DNSNames)
		got, _, err := x509svid.Verify(chain, bundle, x509svid.WithTime(testNow))
		require.NoError(t, err)
		require.Equal(t, id, got)
	})
}
