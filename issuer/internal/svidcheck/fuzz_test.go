package svidcheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// FuzzCheckWIT feeds WIT, which reads the WIT-SVIDs a Signer (a node
// agent's server) returns, arbitrary tokens: it must never panic, and it
// accepts a token only when the token names the entry's ID and binds the
// issuer's key.
func FuzzCheckWIT(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/web")
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(f, err)
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: caKey, KeyID: "k", TrustDomain: td, NotAfter: time.Now().Add(time.Hour)})
	require.NoError(f, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(f, err)
	good, err := a.SignWITSVID(f.Context(), ca.WITSVIDParams{ID: id, PublicKey: key.Public()})
	require.NoError(f, err)
	f.Add(good)
	f.Add("a.b.c")
	f.Add("")
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy93ZWIiLCJjbmYiOnsiandrIjpudWxsfX0.c2ln")
	f.Fuzz(func(t *testing.T, token string) {
		exp, kid, err := WIT(token, id, key.Public())
		if err != nil {
			return // refused is fine; a panic is not
		}
		// Accepted: the claims name id and bind key, as checked again
		// from the token, and the header names a key.
		require.NotEmpty(t, kid)
		again, againKid, err := WIT(token, id, key.Public())
		require.NoError(t, err)
		require.Equal(t, exp, again)
		require.Equal(t, kid, againKid)
		_, _, err = WIT(token, spiffeid.RequireFromPath(td, "/other"), key.Public())
		require.Error(t, err)
	})
}
