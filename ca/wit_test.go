package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// TestSignWITSVIDValidates mints WIT-SVIDs with each authority key type and
// each workload key type, and validates them with witsvid over a WIT bundle
// holding the authority key (WIT rule 13).
func TestSignWITSVIDValidates(t *testing.T) {
	p256, p384, p521 := newP256(t), newECKey(t, elliptic.P384()), newECKey(t, elliptic.P521())
	rsa2048 := newRSA(t, 2048)
	id := mustID("spiffe://example.org/workload")

	authorities := []struct {
		signer crypto.Signer
		alg    string
	}{{p256, ""}, {p384, ""}, {rsa2048, ca.RS256}, {rsa2048, ca.PS256}}
	workloads := []struct {
		key     crypto.Signer
		alg     string
		wantAlg string
	}{
		{p256, "", "ES256"}, {p384, "", "ES384"}, {p521, "", "ES512"},
		{rsa2048, "", "RS256"}, {rsa2048, "PS384", "PS384"},
	}
	for _, at := range authorities {
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: at.signer, KeyID: "wit-1", Algorithm: at.alg, TrustDomain: td})
		require.NoError(t, err)
		bundle := witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{a.KeyID(): a.PublicKey()})
		for _, wt := range workloads {
			t.Run(a.Algorithm()+"/"+wt.wantAlg, func(t *testing.T) {
				token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: wt.key.Public(), KeyAlgorithm: wt.alg})
				require.NoError(t, err)
				svid, err := witsvid.ParseAndValidate(token, bundle)
				require.NoError(t, err)
				assert.Equal(t, id, svid.ID)
				assert.Equal(t, "wit-1", svid.KeyID)
				assert.Equal(t, wt.wantAlg, svid.KeyAlgorithm())
				assert.True(t, wt.key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(svid.PublicKey))
			})
		}
	}
}

// TestSignWITSVIDContents checks the exact header and claims of WIT rule 13.
func TestSignWITSVIDContents(t *testing.T) {
	key, workload := newP256(t), newP256(t)
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, KeyID: "wit-1", Now: clock})
	require.NoError(t, err)
	assert.Equal(t, "wit-1", a.KeyID())
	assert.Equal(t, ca.ES256, a.Algorithm())
	assert.True(t, key.PublicKey.Equal(a.PublicKey()))

	id := mustID("spiffe://example.org/workload")
	token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: workload.Public()})
	require.NoError(t, err)
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)

	// WIT rules 1-4: exactly alg, kid and typ "wit+jwt".
	assert.Equal(t, map[string]any{"alg": "ES256", "kid": "wit-1", "typ": "wit+jwt"}, decodePart(t, parts[0]))

	claims := decodePart(t, parts[1])
	assert.ElementsMatch(t, []string{"sub", "exp", "iat", "jti", "cnf"}, keysOf(claims), "WIT rule 12: no aud")
	assert.Equal(t, id.String(), claims["sub"])
	assert.Equal(t, float64(testNow.Unix()), claims["iat"])
	assert.Equal(t, float64(testNow.Add(ca.DefaultWITSVIDTTL).Unix()), claims["exp"], "default TTL")
	jti, _ := claims["jti"].(string)
	assert.Len(t, jti, 22, "WIT rule 10: 128 random bits")

	// WIT rule 6: cnf.jwk is the public key with an allowed alg, nothing private.
	cnf := claims["cnf"].(map[string]any)
	jwk := cnf["jwk"].(map[string]any)
	assert.Equal(t, "ES256", jwk["alg"])
	assert.ElementsMatch(t, []string{"kty", "crv", "x", "y", "alg"}, keysOf(jwk))

	// jti is random: two tokens for the same workload differ.
	again, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: workload.Public()})
	require.NoError(t, err)
	assert.NotEqual(t, jti, decodePart(t, strings.Split(again, ".")[1])["jti"])
}

func keysOf(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSignWITSVIDLifetime(t *testing.T) {
	key, workload := newP256(t), newP256(t)
	id := mustID("spiffe://example.org/workload")
	exp := func(t *testing.T, token string) time.Time {
		t.Helper()
		return time.Unix(int64(decodePart(t, strings.Split(token, ".")[1])["exp"].(float64)), 0).UTC()
	}

	t.Run("TTL honoured", func(t *testing.T) {
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, Now: clock})
		require.NoError(t, err)
		token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: workload.Public(), TTL: 10 * time.Minute})
		require.NoError(t, err)
		assert.Equal(t, testNow.Add(10*time.Minute), exp(t, token))
	})
	t.Run("never beyond the key's expiry", func(t *testing.T) {
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, NotAfter: testNow.Add(20*time.Minute + 500*time.Millisecond), Now: clock})
		require.NoError(t, err)
		token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: workload.Public()})
		require.NoError(t, err)
		assert.Equal(t, testNow.Add(20*time.Minute), exp(t, token))
	})
	t.Run("expired key refuses to sign", func(t *testing.T) {
		a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, NotAfter: testNow, Now: clock})
		require.NoError(t, err)
		_, err = a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: id, PublicKey: workload.Public()})
		require.ErrorContains(t, err, "signing key expired")
	})
}

func TestNewWITAuthorityRejects(t *testing.T) {
	_, err := ca.NewWITAuthority(ca.WITAuthorityConfig{})
	require.EqualError(t, err, "ca: signer is missing")
	_, err = ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: newP256(t), Algorithm: ca.RS256})
	require.ErrorContains(t, err, "does not fit")
}

func TestSignWITSVIDRejects(t *testing.T) {
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: newP256(t), TrustDomain: td})
	require.NoError(t, err)
	id := mustID("spiffe://example.org/workload")
	wl := newP256(t).Public()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		params ca.WITSVIDParams
		errMsg string
	}{
		{"WIT rule 5: no sub", nil, ca.WITSVIDParams{PublicKey: wl}, "SPIFFE ID is missing"},
		{"foreign trust domain", nil, ca.WITSVIDParams{ID: mustID("spiffe://other.org/w"), PublicKey: wl}, "not a member"},
		{"WIT rule 6: no workload key", nil, ca.WITSVIDParams{ID: id}, "workload key: public key is missing"},
		{"WIT rule 6: private workload key", nil, ca.WITSVIDParams{ID: id, PublicKey: newP256(t)}, "workload key: unsupported public key type *ecdsa.PrivateKey"},
		{"WIT rule 6: Ed25519 has no allowed alg", nil, ca.WITSVIDParams{ID: id, PublicKey: edKey.Public()}, "workload key: ed25519.PublicKey has no allowed algorithm"},
		{"WIT rule 6: EdDSA not allowed", nil, ca.WITSVIDParams{ID: id, PublicKey: edKey.Public(), KeyAlgorithm: "EdDSA"}, `workload key algorithm "EdDSA" is not allowed`},
		{"WIT rule 6: alg does not fit the curve", nil, ca.WITSVIDParams{ID: id, PublicKey: wl, KeyAlgorithm: "ES384"}, "workload key on curve P-256 cannot verify ES384 tokens"},
		{"WIT rule 6: 1024-bit RSA", nil, ca.WITSVIDParams{ID: id, PublicKey: newRSA(t, 1024).Public()}, "RSA key size 1024"},
		{"negative TTL", nil, ca.WITSVIDParams{ID: id, PublicKey: wl, TTL: -time.Minute}, "negative"},
		{"cancelled", cancelled, ca.WITSVIDParams{ID: id, PublicKey: wl}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			token, err := a.SignWITSVID(ctx, tt.params)
			require.ErrorContains(t, err, tt.errMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "ca: "), err.Error())
			assert.Empty(t, token)
		})
	}
}

func TestSignWITSVIDFaultySigner(t *testing.T) {
	key := newP256(t)
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: badSigner{Signer: key, err: errors.New("hsm offline")}})
	require.NoError(t, err)
	_, err = a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: mustID("spiffe://example.org/w"), PublicKey: key.Public()})
	require.ErrorContains(t, err, "signer failed: hsm offline")
}

// TestWITSVIDProofOfPossession runs the whole flow: the CA binds the
// workload's key, the workload proves possession of it, the validator checks
// both (WIT rules 13-15).
func TestWITSVIDProofOfPossession(t *testing.T) {
	a, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: newP256(t), TrustDomain: td})
	require.NoError(t, err)
	workload := newP256(t)
	token, err := a.SignWITSVID(t.Context(), ca.WITSVIDParams{ID: mustID("spiffe://example.org/w"), PublicKey: workload.Public()})
	require.NoError(t, err)

	bundle := witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{a.KeyID(): a.PublicKey()})
	svid, err := witsvid.ParseAndValidate(token, bundle)
	require.NoError(t, err)

	challenge := []byte("nonce-1")
	digest := sha256.Sum256(challenge)
	r, s, err := ecdsa.Sign(rand.Reader, workload, digest[:])
	require.NoError(t, err)
	proof := make([]byte, 64)
	r.FillBytes(proof[:32])
	s.FillBytes(proof[32:])
	require.NoError(t, svid.VerifyProofOfPossession(challenge, proof))
	require.ErrorIs(t, svid.VerifyProofOfPossession([]byte("nonce-2"), proof), witsvid.ErrInvalidProof)

	// A JWT-SVID validator never takes a WIT-SVID for a bearer token: typ
	// differs (JWT rule 5, WIT rule 14).
	_, err = jwtsvid.ParseInsecure(token, nil)
	require.EqualError(t, err, "jwtsvid: token header type not equal to either JWT or JOSE")
}

func ExampleWITAuthority_SignWITSVID() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	authority, err := ca.NewWITAuthority(ca.WITAuthorityConfig{Signer: key, KeyID: "wit-1", TrustDomain: td})
	if err != nil {
		fmt.Println(err)
		return
	}

	// The workload's key pair: the token binds its public half to the ID.
	workloadKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	token, err := authority.SignWITSVID(context.Background(), ca.WITSVIDParams{
		ID:        spiffeid.RequireFromPath(td, "/frontend"),
		PublicKey: workloadKey.Public(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// Validators find the authority in the trust domain's WIT bundle.
	bundle := witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{authority.KeyID(): authority.PublicKey()})
	svid, err := witsvid.ParseAndValidate(token, bundle)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(svid.ID, svid.KeyID, svid.KeyAlgorithm())
	// Output:
	// spiffe://example.org/frontend wit-1 ES256
}
