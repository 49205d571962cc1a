package vault

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/vaulttest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestRotation runs the CA rotation over Vault: each CA is minted by
// sign-intermediate, the bundle holds Vault's root alone, SVIDs chain to it
// across rotations, and the CAs before their expiry are replaced by new
// ones from Vault, the token being renewed on the way.
func TestRotation(t *testing.T) {
	clk := newClock()
	v := vaulttest.New(t, vaulttest.Config{Intermediate: true, Now: clk.Now})
	v.AddAppRole("approle", "r", "s", vaulttest.TokenParams{TTL: 13 * time.Hour, Renewable: true})
	c := newClient(t, v, Config{Auth: &AppRoleAuth{RoleID: "r", SecretID: "s"}, Now: clk.Now})
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td, Upstream: c, Now: clk.Now, CATTL: 24 * time.Hour})
	require.NoError(t, err)

	workload := spiffeid.RequireFromPath(td, "/web")
	check := func() {
		t.Helper()
		authorities := m.Bundle().X509Authorities()
		require.Len(t, authorities, 1)
		assert.Equal(t, v.Root().Raw, authorities[0].Raw, "the bundle is Vault's root")
		key := newKey(t)
		chain, err := m.SignX509SVID(t.Context(), ca.X509SVIDParams{PublicKey: key.Public(), ID: workload})
		require.NoError(t, err)
		require.Len(t, chain, 3, "the SVID, our CA, Vault's intermediate")
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(v.Root())
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: clk.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		require.NoError(t, err)
	}
	check()
	first := m.X509Authority().Certificate()
	signs := v.Requests("pki/root/sign-intermediate")
	for range 8 {
		clk.Add(6 * time.Hour)
		require.NoError(t, m.Rotate(t.Context()))
		check()
	}
	assert.NotEqual(t, first.Raw, m.X509Authority().Certificate().Raw, "replaced before its expiry")
	assert.True(t, m.X509Authority().Certificate().NotAfter.After(first.NotAfter))
	assert.Greater(t, v.Requests("pki/root/sign-intermediate"), signs, "the new CAs come from Vault")
	assert.Positive(t, v.Requests("auth/token/renew-self"), "the token was renewed on the way")
}
