package wpt

import (
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The example of draft-ietf-wimse-wpt-01 §2 (Figures 2 to 5), with the WIT
// of draft-ietf-wimse-workload-creds-01 §5.1 it is bound to, unwrapped from
// the drafts' RFC 8792 folding. Draft -02 changed the example only by
// dropping ath (its WIT was signed again, so its wth differs: the -02 bytes
// are not reproduced here); its WPT has the same header, aud, exp and jti,
// and the claims -02 defines are checked the same way. Recipients ignore
// ath under -02 (§2.3), as this package does.
const (
	draftWIT = "eyJhbGciOiJFUzI1NiIsImtpZCI6Ikp1bmUgNSIsInR5cCI6IndpdCtqd3QifQ.eyJjb" +
		"mYiOnsiandrIjp7ImFsZyI6IkVkRFNBIiwiY3J2IjoiRWQyNTUxOSIsImt0eSI6Ik9LU" +
		"CIsIngiOiIxQ1hYdmZsTl9MVlZzSXNZWHNVdkIwM0ptbEdXZUNIcVFWdW91Q0Y5MmJnI" +
		"n19LCJleHAiOjE3NDU1MTI1MTAsImlhdCI6MTc0NTUwODkxMCwianRpIjoieC1fMUNUT" +
		"DJjY2EzQ1NFNGN3Yl9sIiwic3ViIjoid2ltc2U6Ly9leGFtcGxlLmNvbS9zcGVjaWZpY" +
		"y13b3JrbG9hZCJ9.6KraSQUxWdl9dxFQ3Fj6dPY0Vi88OkwFwZpAIOhLeq6AbXAnLLQg" +
		"Op8U9UDGcBuYF3KiNv6oKQD1ZWAzrMZOJw"
	draftWPT = "eyJhbGciOiJFZERTQSIsInR5cCI6IndwdCtqd3QifQ.eyJhdGgiOiJDTDR3amZwUm1OZ" +
		"i1iZFlJYllMblY5ZDVyTUFSR3dLWUUxMHdVd3pDMGpJIiwiYXVkIjoiaHR0cHM6Ly93b" +
		"3JrbG9hZC5leGFtcGxlLmNvbS9wYXRoIiwiZXhwIjoxNzQ1NTEwMDE2LCJqdGkiOiJfX" +
		"2J3YzRFU0MzYWNjMkxUQzEtX3giLCJ3dGgiOiJBYVlVZkMzNEQxZGkyRnhRTHBpSUpKN" +
		"1NnOFZaNm84T0Nkd1NmOUlUb0xnIn0.PI7d9AcYhLoEgPgbJvcM132lkBKnM1NXU-5hZ" +
		"UzVTIyj2dRJaTLFs6e5NYv5gg6AqcV7NvkYCwfgMgWasWQzCA"
	draftAudience = "https://workload.example.com/path"
	draftExpiry   = 1745510016
	// The bearer token of the -01 example request, which ath hashes.
	draftAccessToken = "16_mAd0GiwaZokU26_0902100"
)

// draftConfirmation returns the cnf key and alg of the example WIT. Its
// authority's signature is not checked: the drafts publish no key for it.
func draftConfirmation(t testing.TB) (ed25519.PublicKey, jose.SignatureAlgorithm) {
	t.Helper()
	wit, err := jose.ParseSigned(draftWIT, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	payload := wit.UnsafePayloadWithoutVerification()
	var claims struct {
		Cnf struct {
			JWK jose.JSONWebKey `json:"jwk"`
		} `json:"cnf"`
	}
	require.NoError(t, json.Unmarshal(payload, &claims))
	pub, ok := claims.Cnf.JWK.Key.(ed25519.PublicKey)
	require.True(t, ok)
	return pub, jose.SignatureAlgorithm(claims.Cnf.JWK.Algorithm)
}

func draftExpectation() *expectation {
	return &expectation{
		audiences:   []string{draftAudience},
		method:      "POST",
		wit:         draftWIT,
		now:         time.Unix(draftExpiry-30, 0),
		leeway:      0,
		maxLifetime: DefaultMaxLifetime,
	}
}

func TestDraftExample(t *testing.T) {
	pub, alg := draftConfirmation(t)
	require.Equal(t, jose.EdDSA, alg)

	claims, err := verifyToken(draftWPT, pub, alg, draftExpectation())
	require.NoError(t, err)
	assert.Equal(t, &Claims{
		Audience: []string{draftAudience},
		Expiry:   time.Unix(draftExpiry, 0).UTC(),
		ID:       "__bwc4ESC3acc2LTC1-_x",
		WITHash:  "AaYUfC34D1di2FxQLpiIJJ7Sg8VZ6o8OCdwSf9IToLg",
	}, claims)
	assert.Equal(t, claims.WITHash, Hash(draftWIT))
	// ath of the -01 example, computed as tth is.
	assert.Equal(t, "CL4wjfpRmNf-bdYIbYLnV9d5rMARGwKYE10wUwzC0jI", Hash(draftAccessToken))
	assert.True(t, isToken68(draftWPT))
	got, err := credentials("WPT " + draftWPT)
	require.NoError(t, err)
	assert.Equal(t, draftWPT, got)
}

func TestDraftExampleRefused(t *testing.T) {
	pub, alg := draftConfirmation(t)
	for name, mod := range map[string]func(e *expectation) (string, jose.SignatureAlgorithm){
		"after exp": func(e *expectation) (string, jose.SignatureAlgorithm) {
			e.now = time.Unix(draftExpiry, 0)
			return draftWPT, alg
		},
		"another target": func(e *expectation) (string, jose.SignatureAlgorithm) {
			e.audiences = []string{"https://workload.example.com/other"}
			return draftWPT, alg
		},
		"another WIT": func(e *expectation) (string, jose.SignatureAlgorithm) {
			e.wit = strings.Replace(draftWIT, "6KraSQ", "6KraSR", 1)
			return draftWPT, alg
		},
		"a Txn-Token it does not bind": func(e *expectation) (string, jose.SignatureAlgorithm) {
			e.txnToken, e.hasTxnToken = "txn", true
			return draftWPT, alg
		},
		"cnf alg other than the header's": func(e *expectation) (string, jose.SignatureAlgorithm) {
			return draftWPT, jose.ES256
		},
		"payload altered": func(e *expectation) (string, jose.SignatureAlgorithm) {
			parts := strings.Split(draftWPT, ".")
			return parts[0] + "." + strings.Replace(parts[1], "X3g", "X3h", 1) + "." + parts[2], alg
		},
	} {
		want := draftExpectation()
		token, a := mod(want)
		_, err := verifyToken(token, pub, a, want)
		require.ErrorIs(t, err, ErrInvalidProof, name)
	}
}

// TestMintEdDSA mints with an Ed25519 key, the draft example's algorithm,
// which WIT-SVIDs do not use but WIMSE WITs may, and checks that the header
// is the draft's byte for byte.
func TestMintEdDSA(t *testing.T) {
	pub, priv, err := ed25519.GenerateKey(nil)
	require.NoError(t, err)
	js, err := newSigner(priv, jose.EdDSA)
	require.NoError(t, err)
	now := time.Unix(draftExpiry-60, 0)
	token, err := mint(js, draftWIT, &MintParams{Audience: draftAudience, Now: now})
	require.NoError(t, err)
	assert.Equal(t, strings.Split(draftWPT, ".")[0], strings.Split(token, ".")[0])
	want := draftExpectation()
	want.now = now
	claims, err := verifyToken(token, pub, jose.EdDSA, want)
	require.NoError(t, err)
	assert.Equal(t, time.Unix(draftExpiry, 0).UTC(), claims.Expiry)
}
