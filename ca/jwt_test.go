package ca_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decodePart decodes one base64url part of a compact JWS as a JSON object.
func decodePart(t *testing.T, part string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(part)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(raw, &m))
	return m
}

func TestJWTAuthorityAlgorithms(t *testing.T) {
	p256 := newP256(t)
	p384 := newECKey(t, elliptic.P384())
	rsa2048 := newRSA(t, 2048)
	id := mustID("spiffe://example.org/workload")

	tests := []struct {
		name    string
		signer  crypto.Signer
		alg     string
		wantAlg string
	}{
		{"P-256 defaults to ES256", p256, "", ca.ES256},
		{"P-256 with ES256", p256, ca.ES256, ca.ES256},
		{"P-384 defaults to ES384", p384, "", ca.ES384},
		{"RSA defaults to RS256", rsa2048, "", ca.RS256},
		{"RSA with RS256", rsa2048, ca.RS256, ca.RS256},
		{"RSA with PS256", rsa2048, ca.PS256, ca.PS256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: tt.signer, KeyID: "key-1", Algorithm: tt.alg})
			require.NoError(t, err)
			assert.Equal(t, tt.wantAlg, a.Algorithm())
			token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
			require.NoError(t, err)

			// JWT rule 3: the alg is the expected one; the signature
			// verifies with go-jose ...
			parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tt.wantAlg)})
			require.NoError(t, err)
			var claims jwt.Claims
			require.NoError(t, parsed.Claims(tt.signer.Public(), &claims))
			assert.Equal(t, id.String(), claims.Subject)

			// ... and with the JWT-SVID validator over a bundle.
			bundle := jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{"key-1": a.PublicKey()})
			svid, err := jwtsvid.ParseAndValidate(token, bundle, []string{"svc"})
			require.NoError(t, err)
			assert.Equal(t, id, svid.ID)
			assert.Equal(t, []string{"svc"}, svid.Audience)
		})
	}
}

func TestNewJWTAuthorityRejects(t *testing.T) {
	p256 := newP256(t)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		name   string
		cfg    ca.JWTAuthorityConfig
		errMsg string
	}{
		{"no signer", ca.JWTAuthorityConfig{}, "signer is missing"},
		// JWT rule 3: key and algorithm must fit.
		{"P-256 with ES384", ca.JWTAuthorityConfig{Signer: p256, Algorithm: ca.ES384}, `algorithm "ES384" does not fit a P-256 key`},
		{"P-384 with ES256", ca.JWTAuthorityConfig{Signer: newECKey(t, elliptic.P384()), Algorithm: ca.ES256}, "does not fit a P-384 key"},
		{"P-256 with RS256", ca.JWTAuthorityConfig{Signer: p256, Algorithm: ca.RS256}, "does not fit"},
		{"RSA with ES256", ca.JWTAuthorityConfig{Signer: newRSA(t, 2048), Algorithm: ca.ES256}, "does not fit an RSA key"},
		{"RSA with RS384", ca.JWTAuthorityConfig{Signer: newRSA(t, 2048), Algorithm: "RS384"}, "does not fit an RSA key"},
		{"JWT rule 3: none", ca.JWTAuthorityConfig{Signer: p256, Algorithm: "none"}, "does not fit"},
		{"JWT rule 3: HS256", ca.JWTAuthorityConfig{Signer: p256, Algorithm: "HS256"}, "does not fit"},
		{"RSA-1024", ca.JWTAuthorityConfig{Signer: newRSA(t, 1024)}, "at least 2048 bits"},
		{"P-521", ca.JWTAuthorityConfig{Signer: newECKey(t, elliptic.P521())}, "unsupported ECDSA curve"},
		{"JWT rule 3: Ed25519", ca.JWTAuthorityConfig{Signer: ed}, "unsupported key type"},
		{"key ID too long", ca.JWTAuthorityConfig{Signer: p256, KeyID: strings.Repeat("k", 257)}, "longer than 256 bytes"},
		{"trust domain with empty label", ca.JWTAuthorityConfig{Signer: p256, TrustDomain: mustTD("a..b")}, "empty DNS label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.NewJWTAuthority(tt.cfg)
			require.ErrorContains(t, err, tt.errMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "ca: "), err.Error())
			assert.Nil(t, a)
		})
	}
}

func TestSignJWTSVIDContents(t *testing.T) {
	key := newP256(t)
	a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, KeyID: "kid-1", Now: clock})
	require.NoError(t, err)
	id := mustID("spiffe://example.org/workload")
	token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
	require.NoError(t, err)

	// JWT rule 1: compact serialization, three unpadded base64url parts.
	parts := strings.Split(token, ".")
	require.Len(t, parts, 3)
	assert.NotContains(t, token, "=")

	// JWT rules 2-5, section G: the header is exactly alg, kid, typ.
	assert.Equal(t, map[string]any{"alg": "ES256", "kid": "kid-1", "typ": "JWT"}, decodePart(t, parts[0]))

	// JWT rules 6-8, section G: claims are exactly sub, aud (array), exp, iat.
	assert.Equal(t, map[string]any{
		"sub": id.String(),
		"aud": []any{"svc"},
		"exp": float64(testNow.Add(ca.DefaultJWTSVIDTTL).Unix()),
		"iat": float64(testNow.Unix()),
	}, decodePart(t, parts[1]))

	// RFC 7518 section 3.4: the ES256 signature is the 64-byte R || S.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	require.NoError(t, err)
	assert.Len(t, sig, 64)

	// The token verifies with the public key at the token's own time.
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	require.NoError(t, err)
	var claims jwt.Claims
	require.NoError(t, parsed.Claims(&key.PublicKey, &claims))
	require.NoError(t, claims.ValidateWithLeeway(jwt.Expected{AnyAudience: []string{"svc"}, Time: testNow}, 0))

	t.Run("several audiences stay an array", func(t *testing.T) {
		token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"a", "b"}})
		require.NoError(t, err)
		assert.Equal(t, []any{"a", "b"}, decodePart(t, strings.Split(token, ".")[1])["aud"])
	})
	t.Run("trust domain ID as sub is allowed", func(t *testing.T) {
		_, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: td.ID(), Audience: []string{"svc"}})
		require.NoError(t, err)
	})
	t.Run("jti only when asked, random in every token", func(t *testing.T) {
		assert.NotContains(t, decodePart(t, parts[1]), "jti")
		seen := map[string]bool{}
		for range 3 {
			token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, JTI: true})
			require.NoError(t, err)
			claims := decodePart(t, strings.Split(token, ".")[1])
			jti, ok := claims["jti"].(string)
			require.True(t, ok, "jti missing or not a string: %v", claims)
			raw, err := base64.RawURLEncoding.DecodeString(jti)
			require.NoError(t, err)
			assert.Len(t, raw, 16)
			assert.False(t, seen[jti], "jti %s repeated", jti)
			seen[jti] = true
			// The other claims are those of a token without jti.
			delete(claims, "jti")
			assert.ElementsMatch(t, []string{"sub", "aud", "exp", "iat"}, keys(claims))
			// And it still validates as a JWT-SVID.
			parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
			require.NoError(t, err)
			var c jwt.Claims
			require.NoError(t, parsed.Claims(&key.PublicKey, &c))
			assert.Equal(t, jti, c.ID)
		}
	})
	t.Run("iss only when asked", func(t *testing.T) {
		assert.NotContains(t, decodePart(t, parts[1]), "iss")
		token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, Issuer: "https://oidc.example.org"})
		require.NoError(t, err)
		assert.Equal(t, "https://oidc.example.org", decodePart(t, strings.Split(token, ".")[1])["iss"])
		_, err = a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, Issuer: "https://" + strings.Repeat("x", 2048)})
		assert.ErrorContains(t, err, "ca: cannot sign JWT-SVID: issuer is longer than 2048 bytes")
	})
	t.Run("P-384 signature is 96 bytes", func(t *testing.T) {
		a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: newECKey(t, elliptic.P384()), Now: clock})
		require.NoError(t, err)
		token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
		require.NoError(t, err)
		sig, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[2])
		require.NoError(t, err)
		assert.Len(t, sig, 96)
	})
}

func TestSignJWTSVIDLifetime(t *testing.T) {
	key := newP256(t)
	id := mustID("spiffe://example.org/workload")
	exp := func(t *testing.T, token string) time.Time {
		t.Helper()
		return time.Unix(int64(decodePart(t, strings.Split(token, ".")[1])["exp"].(float64)), 0).UTC()
	}

	t.Run("TTL honoured", func(t *testing.T) {
		a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, Now: clock})
		require.NoError(t, err)
		token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, TTL: time.Minute})
		require.NoError(t, err)
		assert.Equal(t, testNow.Add(time.Minute), exp(t, token))
	})
	t.Run("JWT section G: never beyond the key's expiry", func(t *testing.T) {
		a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, NotAfter: testNow.Add(2*time.Minute + 500*time.Millisecond), Now: clock})
		require.NoError(t, err)
		token, err := a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, TTL: time.Hour})
		require.NoError(t, err)
		assert.Equal(t, testNow.Add(2*time.Minute), exp(t, token))
	})
	t.Run("expired key refuses to sign", func(t *testing.T) {
		for _, notAfter := range []time.Time{testNow, testNow.Add(-time.Hour), testNow.Add(500 * time.Millisecond)} {
			a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key, NotAfter: notAfter, Now: clock})
			require.NoError(t, err)
			_, err = a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
			require.ErrorContains(t, err, "signing key expired")
		}
	})
}

func TestSignJWTSVIDRejects(t *testing.T) {
	a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: newP256(t), TrustDomain: td, Now: clock})
	require.NoError(t, err)
	id := mustID("spiffe://example.org/workload")
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name   string
		ctx    context.Context
		params ca.JWTSVIDParams
		errMsg string
	}{
		{"JWT rule 6: no sub", nil, ca.JWTSVIDParams{Audience: []string{"svc"}}, "SPIFFE ID is missing"},
		{"ID rule 17: ID over 2048 bytes", nil, ca.JWTSVIDParams{ID: mustID("spiffe://example.org/" + strings.Repeat("a", 2048)), Audience: []string{"svc"}}, "more than the 2048 allowed"},
		{"foreign trust domain", nil, ca.JWTSVIDParams{ID: mustID("spiffe://other.org/w"), Audience: []string{"svc"}}, "not a member"},
		{"JWT rule 7: no audience", nil, ca.JWTSVIDParams{ID: id}, "audience is missing"},
		{"JWT rule 7: empty audience", nil, ca.JWTSVIDParams{ID: id, Audience: []string{"svc", ""}}, "audience is empty"},
		{"too many audiences", nil, ca.JWTSVIDParams{ID: id, Audience: make([]string, 65)}, "65 audiences"},
		{"negative TTL", nil, ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}, TTL: -time.Minute}, "negative"},
		{"cancelled", cancelled, ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}}, "context canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			token, err := a.SignJWTSVID(ctx, tt.params)
			require.ErrorContains(t, err, tt.errMsg)
			assert.True(t, strings.HasPrefix(err.Error(), "ca: "), err.Error())
			assert.Empty(t, token)
		})
	}
}

// badSigner returns a fixed signature or error, standing in for a faulty HSM.
type badSigner struct {
	crypto.Signer
	sig []byte
	err error
}

func (s badSigner) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) { return s.sig, s.err }

func TestSignJWTSVIDFaultySigner(t *testing.T) {
	key := newP256(t)
	id := mustID("spiffe://example.org/workload")
	tests := []struct {
		name   string
		signer badSigner
		errMsg string
	}{
		{"signer error", badSigner{Signer: key, err: errors.New("hsm offline")}, "signer failed: hsm offline"},
		{"not ASN.1", badSigner{Signer: key, sig: []byte("junk")}, "malformed ECDSA signature"},
		{"trailing data", badSigner{Signer: key, sig: []byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00}}, "malformed ECDSA signature"},
		{"zero R", badSigner{Signer: key, sig: []byte{0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01}}, "out-of-range"},
		{"oversized S", badSigner{Signer: key, sig: append([]byte{0x30, 0x27, 0x02, 0x01, 0x01, 0x02, 0x22, 0x01}, make([]byte, 33)...)}, "out-of-range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: tt.signer, Now: clock})
			require.NoError(t, err)
			_, err = a.SignJWTSVID(t.Context(), ca.JWTSVIDParams{ID: id, Audience: []string{"svc"}})
			require.ErrorContains(t, err, tt.errMsg)
		})
	}
}

func TestKeyID(t *testing.T) {
	key := newP256(t)
	kid, err := ca.KeyID(key.Public())
	require.NoError(t, err)
	assert.Len(t, kid, 27)
	again, err := ca.KeyID(&ecdsa.PublicKey{Curve: key.Curve, X: key.X, Y: key.Y})
	require.NoError(t, err)
	assert.Equal(t, kid, again, "equal keys get equal IDs")
	other, err := ca.KeyID(newP256(t).Public())
	require.NoError(t, err)
	assert.NotEqual(t, kid, other)

	_, err = ca.KeyID("not a key")
	require.ErrorContains(t, err, "ca: cannot derive key ID")

	a, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: key})
	require.NoError(t, err)
	assert.Equal(t, kid, a.KeyID(), "the default key ID is KeyID of the public key")
}

// keys returns the keys of m.
func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
