package admin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestMintX509SVID(t *testing.T) {
	e, mi := admintest.StartMinting(t)
	csr, key := admintest.CSR(t, []string{"spiffe://example.org/bootstrap"}, "db.example.org")
	minted, err := e.Client.MintX509SVID(t.Context(), csr, 90*time.Minute)
	require.NoError(t, err)
	leaf := minted.Chain[0]
	assert.Equal(t, []string{"db.example.org"}, leaf.DNSNames)
	assert.Equal(t, key.Public(), leaf.PublicKey)
	assert.WithinDuration(t, time.Now().Add(90*time.Minute), leaf.NotAfter, time.Minute)
	assert.Equal(t, mi.CA.Bundle().X509Authorities(), minted.RootCAs)
	id, _, err := x509svid.Verify(minted.Chain, mi.CA.Bundle())
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/bootstrap", id.String())

	// The mint is logged at Info, without the key.
	logs := e.Log.String()
	assert.Contains(t, logs, `level=INFO msg="admin: minted an X509-SVID" spiffe_id=spiffe://example.org/bootstrap dns_names=[db.example.org] serial=`+leaf.SerialNumber.Text(16))
	assert.NotContains(t, logs, "PRIVATE KEY")

	// Without a TTL, the minter's default.
	csr, _ = admintest.CSR(t, []string{"spiffe://example.org/bootstrap"})
	minted, err = e.Client.MintX509SVID(t.Context(), csr, 0)
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(ca.DefaultX509SVIDTTL), minted.Chain[0].NotAfter, time.Minute)
}

func TestMintJWTSVID(t *testing.T) {
	e, mi := admintest.StartMinting(t)
	id := spiffeid.RequireFromPath(td, "/batch")
	minted, err := e.Client.MintJWTSVID(t.Context(), id, []string{"db", "cache"}, 10*time.Minute)
	require.NoError(t, err)
	svid, err := jwtsvid.ParseAndValidate(minted.Token, mi.CA.Bundle(), []string{"cache"})
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	assert.Equal(t, svid.Expiry, minted.ExpiresAt)
	assert.WithinDuration(t, time.Now().Add(10*time.Minute), minted.ExpiresAt, time.Minute)
	logs := e.Log.String()
	assert.Contains(t, logs, `level=INFO msg="admin: minted a JWT-SVID" spiffe_id=spiffe://example.org/batch audience="[db cache]" expires_at=`)
	assert.NotContains(t, logs, minted.Token)
	assert.NotContains(t, logs, strings.Split(minted.Token, ".")[2], "not even the signature")
}
