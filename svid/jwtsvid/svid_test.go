package jwtsvid_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	subject = spiffeid.RequireFromPath(td, "/workload")
	svc     = []string{"svc"}
)

type keys struct {
	p256, p384, p521, attacker *ecdsa.PrivateKey
	rsa2048, rsa1024           *rsa.PrivateKey
	ed                         ed25519.PrivateKey
}

func newKeys(t *testing.T) *keys {
	t.Helper()
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		require.NoError(t, err)
		return k
	}
	r2048, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	return &keys{
		p256: ec(elliptic.P256()), p384: ec(elliptic.P384()), p521: ec(elliptic.P521()), attacker: ec(elliptic.P256()),
		rsa2048: r2048, rsa1024: r1024, ed: ed,
	}
}

func (k *keys) bundle() *jwtbundle.Bundle {
	return jwtbundle.FromJWTAuthorities(td, map[string]crypto.PublicKey{
		"p256": k.p256.Public(), "p384": k.p384.Public(), "p521": k.p521.Public(),
		"rsa2048": k.rsa2048.Public(), "rsa1024": k.rsa1024.Public(), "ed": k.ed.Public(),
	})
}

func hdr(alg, kid string, extra ...any) map[string]any {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	if kid != "" {
		h["kid"] = kid
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(h, extra[i].(string))
			continue
		}
		h[extra[i].(string)] = extra[i+1]
	}
	return h
}

func claims(extra ...any) map[string]any {
	c := map[string]any{
		"sub": subject.String(),
		"aud": []string{"svc"},
		"exp": time.Now().Add(5 * time.Minute).Unix(),
		"iat": time.Now().Unix(),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
			continue
		}
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

func jwkJSON(t *testing.T, key crypto.PublicKey) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key}.MarshalJSON()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

// TestParseAndValidate is the MUST-reject table of jwt-svid.md section D,
// plus the algorithm/key fit rows of JWT rule 3. The expected audience is
// ["svc"].
func TestParseAndValidate(t *testing.T) {
	k := newKeys(t)
	bundles := jwtbundle.NewSet(k.bundle())
	now := time.Now()

	type row struct {
		name    string
		token   func(t *testing.T) string
		wantErr string
	}
	sign := func(key any, h map[string]any, c any) func(t *testing.T) string {
		return func(t *testing.T) string { return testca.SignJWT(t, key, h, c) }
	}
	tests := []row{
		{name: "ES256, known kid, typ JWT, aud [svc], exp +5m", token: sign(k.p256, hdr("ES256", "p256"), claims())},
		{name: "typ JOSE", token: sign(k.p256, hdr("ES256", "p256", "typ", "JOSE"), claims())}, // JWT rule 5
		{name: "no typ", token: sign(k.p256, hdr("ES256", "p256", "typ", nil), claims())},      // JWT rule 5
		{
			name: "typ at+jwt", token: sign(k.p256, hdr("ES256", "p256", "typ", "at+jwt"), claims()), // JWT rule 5
			wantErr: "jwtsvid: token header type not equal to either JWT or JOSE",
		},
		{
			name: "typ jwt", token: sign(k.p256, hdr("ES256", "p256", "typ", "jwt"), claims()), // JWT rule 5: case-sensitive
			wantErr: "jwtsvid: token header type not equal to either JWT or JOSE",
		},
		{
			name: "typ not a string", token: sign(k.p256, hdr("ES256", "p256", "typ", 1), claims()), // JWT rule 5
			wantErr: "jwtsvid: token header type not equal to either JWT or JOSE",
		},
		{
			name: "no kid", token: sign(k.p256, hdr("ES256", ""), claims()), // JWT rule 4, step S3
			wantErr: "jwtsvid: token header missing key id",
		},
		{
			name: "unknown kid", token: sign(k.p256, hdr("ES256", "nope"), claims()), // JWT step S6
			wantErr: `jwtsvid: no JWT authority "nope" found for trust domain "example.org"`,
		},
		{name: "extra header x-foo", token: sign(k.p256, hdr("ES256", "p256", "x-foo", "bar"), claims())}, // JWT rule 2
		{
			name: "crit x-foo", token: sign(k.p256, hdr("ES256", "p256", "x-foo", "bar", "crit", []string{"x-foo"}), claims()), // JWT rule 2
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
		{
			// JWT rule 2: the key comes from the bundle, never from the token.
			name: "jwk header with the signing key, kid of a bundle key",
			token: func(t *testing.T) string {
				return testca.SignJWT(t, k.attacker, hdr("ES256", "p256", "jwk", jwkJSON(t, k.attacker.Public())), claims())
			},
			wantErr: "jwtsvid: unable to get claims from token: go-jose/go-jose: error in cryptographic primitive",
		},
		{
			name:    "jku and x5u headers, kid of a bundle key", // JWT rule 2
			token:   sign(k.attacker, hdr("ES256", "p256", "jku", "https://evil.example/jwks", "x5u", "https://evil.example/c"), claims()),
			wantErr: "jwtsvid: unable to get claims from token: go-jose/go-jose: error in cryptographic primitive",
		},
		{
			// JWT rule 2: a certificate chain in the header is never trusted.
			name: "x5c header with the signing key, kid of a bundle key",
			token: func(t *testing.T) string {
				ca := testca.New(t, td, testca.WithKey(k.attacker))
				x5c := []string{base64.StdEncoding.EncodeToString(ca.Cert().Raw)}
				return testca.SignJWT(t, k.attacker, hdr("ES256", "p256", "x5c", x5c), claims())
			},
			wantErr: "jwtsvid: unable to get claims from token: go-jose/go-jose: error in cryptographic primitive",
		},
		{name: "aud as a string", token: sign(k.p256, hdr("ES256", "p256"), claims("aud", "svc"))}, // JWT rule 7
		{name: "aud [a svc]", token: sign(k.p256, hdr("ES256", "p256"), claims("aud", []string{"a", "svc"}))},
		{
			name: "aud [other]", token: sign(k.p256, hdr("ES256", "p256"), claims("aud", []string{"other"})), // JWT rule 7
			wantErr: `jwtsvid: expected audience in ["svc"] (audience=["other"])`,
		},
		{
			name: "aud missing", token: sign(k.p256, hdr("ES256", "p256"), claims("aud", nil)), // JWT rule 7
			wantErr: `jwtsvid: expected audience in ["svc"] (audience=[])`,
		},
		{
			name: "exp missing", token: sign(k.p256, hdr("ES256", "p256"), claims("exp", nil)), // JWT rule 8
			wantErr: "jwtsvid: token missing exp claim",
		},
		{name: "exp 30s ago", token: sign(k.p256, hdr("ES256", "p256"), claims("exp", now.Add(-30*time.Second).Unix()))}, // JWT rule 8: leeway
		{
			name: "exp 90s ago", token: sign(k.p256, hdr("ES256", "p256"), claims("exp", now.Add(-90*time.Second).Unix())), // JWT rule 8
			wantErr: "jwtsvid: token has expired",
		},
		{
			name: "exp as a string", token: sign(k.p256, hdr("ES256", "p256"), claims("exp", "2099-01-01")), // JWT rule 8
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
		{
			name: "nbf 5m in the future", token: sign(k.p256, hdr("ES256", "p256"), claims("nbf", now.Add(5*time.Minute).Unix())), // JWT rule 9
			wantErr: "jwtsvid: go-jose/go-jose/jwt: validation failed, token not valid yet (nbf)",
		},
		{
			name: "iat 5m in the future", token: sign(k.p256, hdr("ES256", "p256"), claims("iat", now.Add(5*time.Minute).Unix())), // JWT rule 9
			wantErr: "jwtsvid: go-jose/go-jose/jwt: validation failed, token issued in the future (iat)",
		},
		{
			name: "sub missing", token: sign(k.p256, hdr("ES256", "p256"), claims("sub", nil)), // JWT rule 6
			wantErr: "jwtsvid: token missing subject claim",
		},
		{
			name: "sub not a SPIFFE ID", token: sign(k.p256, hdr("ES256", "p256"), claims("sub", "not-a-spiffe-id")), // JWT rule 6
			wantErr: "jwtsvid: token has an invalid subject claim: spiffeid: scheme is missing or invalid",
		},
		{name: "sub is a trust domain ID", token: sign(k.p256, hdr("ES256", "p256"), claims("sub", "spiffe://example.org"))}, // JWT rule 6: parity
		{
			name: "sub in a trust domain without bundle", token: sign(k.p256, hdr("ES256", "p256"), claims("sub", "spiffe://other.org/w")), // JWT step S5
			wantErr: `jwtsvid: no bundle found for trust domain "other.org"`,
		},
		{
			name: "alg none", token: func(t *testing.T) string { return testca.SignJWT(t, nil, hdr("none", "p256"), claims()) }, // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name: "alg HS256", token: sign([]byte("secret"), hdr("HS256", "p256"), claims()), // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name: "alg EdDSA with an Ed25519 bundle key", token: sign(k.ed, hdr("EdDSA", "ed"), claims()), // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name: "alg ES256K", token: sign(nil, hdr("ES256K", "p256"), claims()), // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name: "no alg", token: sign(nil, hdr("", "p256", "alg", nil), claims()), // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{name: "ES384 with P-384", token: sign(k.p384, hdr("ES384", "p384"), claims())},
		{name: "ES512 with P-521", token: sign(k.p521, hdr("ES512", "p521"), claims())},
		{name: "RS256 with RSA 2048", token: sign(k.rsa2048, hdr("RS256", "rsa2048"), claims())},
		{name: "RS512 with RSA 2048", token: sign(k.rsa2048, hdr("RS512", "rsa2048"), claims())},
		{name: "PS256 with RSA 2048", token: sign(k.rsa2048, hdr("PS256", "rsa2048"), claims())},
		{name: "PS384 with RSA 2048", token: sign(k.rsa2048, hdr("PS384", "rsa2048"), claims())},
		{
			name: "ES256 signed by a P-384 bundle key", token: sign(k.p384, hdr("ES256", "p384"), claims()), // JWT rule 3: curve must fit
			wantErr: "jwtsvid: JWT authority on curve P-384 cannot verify ES256 tokens",
		},
		{
			name: "ES384 with a P-256 bundle key", token: sign(k.p256, hdr("ES384", "p256"), claims()), // JWT rule 3
			wantErr: "jwtsvid: JWT authority on curve P-256 cannot verify ES384 tokens",
		},
		{
			name: "ES256 with an RSA bundle key", token: sign(k.p256, hdr("ES256", "rsa2048"), claims()), // JWT rule 3
			wantErr: "jwtsvid: JWT authority of type *rsa.PublicKey cannot verify ES256 tokens",
		},
		{
			name: "ES256 with an Ed25519 bundle key", token: sign(k.p256, hdr("ES256", "ed"), claims()), // JWT rule 3
			wantErr: "jwtsvid: JWT authority of type ed25519.PublicKey cannot verify ES256 tokens",
		},
		{
			name: "RS256 with an ECDSA bundle key", token: sign(k.rsa2048, hdr("RS256", "p256"), claims()), // JWT rule 3
			wantErr: "jwtsvid: JWT authority of type *ecdsa.PublicKey cannot verify RS256 tokens",
		},
		{
			name: "RS256 with a 1024-bit RSA key", token: sign(k.rsa1024, hdr("RS256", "rsa1024"), claims()), // JWT rule 3, RFC 7518 §3.3
			wantErr: "jwtsvid: JWT authority is a 1024-bit RSA key; RS256 requires at least 2048 bits",
		},
		{
			name: "signed by another key", token: sign(k.attacker, hdr("ES256", "p256"), claims()), // JWT step S7
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
		{
			name: "payload changed after signing", // JWT step S7
			token: func(t *testing.T) string {
				tok := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims())
				parts := strings.Split(tok, ".")
				evil, err := json.Marshal(claims("sub", "spiffe://example.org/admin"))
				require.NoError(t, err)
				return parts[0] + "." + base64.RawURLEncoding.EncodeToString(evil) + "." + parts[2]
			},
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
		{
			name: "JWS JSON serialization", // JWT rule 1
			token: func(t *testing.T) string {
				tok := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims())
				parts := strings.Split(tok, ".")
				b, err := json.Marshal(map[string]any{"protected": parts[0], "payload": parts[1], "signature": parts[2]})
				require.NoError(t, err)
				return string(b)
			},
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name:    "payload is a JSON array", // JWT step S4
			token:   sign(k.p256, hdr("ES256", "p256"), []any{"sub"}),
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
		{name: "two parts", token: func(*testing.T) string { return "eyJhbGciOiJFUzI1NiJ9.e30" }, wantErr: "jwtsvid: unable to parse JWT token"},
		{name: "four parts", token: func(*testing.T) string { return "a.b.c.d" }, wantErr: "jwtsvid: unable to parse JWT token"},
		{name: "empty", token: func(*testing.T) string { return "" }, wantErr: "jwtsvid: unable to parse JWT token"},
		{
			name:    "longer than MaxTokenLength", // bounded before parsing
			token:   sign(k.p256, hdr("ES256", "p256"), claims("pad", strings.Repeat("a", jwtsvid.MaxTokenLength))),
			wantErr: "jwtsvid: token is too long: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			svid, err := jwtsvid.ParseAndValidate(token, bundles, svc)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				assert.True(t, strings.HasPrefix(err.Error(), tt.wantErr), "got %q", err)
				assert.Nil(t, svid)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, token, svid.Marshal())
			assert.Contains(t, svid.Audience, "svc")
			assert.Equal(t, time.UTC, svid.Expiry.Location())
		})
	}
}

func TestParseAndValidateResult(t *testing.T) {
	k := newKeys(t)
	exp := time.Now().Add(5 * time.Minute).Truncate(time.Second)
	token := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("exp", exp.Unix(), "aud", []string{"a", "svc"}, "custom", "x"))

	svid, err := jwtsvid.ParseAndValidate(token, k.bundle(), []string{"other", "svc"})
	require.NoError(t, err)
	assert.Equal(t, subject, svid.ID)
	assert.Equal(t, []string{"a", "svc"}, svid.Audience)
	assert.True(t, exp.Equal(svid.Expiry))
	assert.Equal(t, "x", svid.Claims["custom"])
	assert.Equal(t, subject.String(), svid.Claims["sub"])
	assert.InDelta(t, float64(exp.Unix()), svid.Claims["exp"], 0)
	assert.Empty(t, svid.Hint)
	assert.Equal(t, token, svid.Marshal())
}

func TestParseAndValidateArguments(t *testing.T) {
	k := newKeys(t)
	noAud := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("aud", nil))
	good := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims())

	// JWT rule 7, stricter than go-spiffe: no expected audience is an error,
	// so a token without aud can never pass.
	for _, aud := range [][]string{nil, {}} {
		_, err := jwtsvid.ParseAndValidate(noAud, k.bundle(), aud)
		require.EqualError(t, err, "jwtsvid: at least one expected audience is required")
		_, err = jwtsvid.ParseAndValidate(good, k.bundle(), aud)
		require.EqualError(t, err, "jwtsvid: at least one expected audience is required")
	}
	_, err := jwtsvid.ParseAndValidate(good, k.bundle(), []string{"svc", ""})
	require.EqualError(t, err, "jwtsvid: expected audience cannot be empty")

	_, err = jwtsvid.ParseAndValidate(good, nil, svc)
	require.EqualError(t, err, "jwtsvid: bundle source is required")

	// A failing source: the cause stays reachable.
	cause := errors.New("source down")
	_, err = jwtsvid.ParseAndValidate(good, fixedSource{err: cause}, svc)
	require.ErrorIs(t, err, cause)
	require.EqualError(t, err, `jwtsvid: no bundle found for trust domain "example.org"`)

	// A source answering nil, or for another trust domain (JWT step S5).
	_, err = jwtsvid.ParseAndValidate(good, fixedSource{}, svc)
	require.EqualError(t, err, `jwtsvid: no bundle found for trust domain "example.org"`)
	other := jwtbundle.FromJWTAuthorities(spiffeid.RequireTrustDomainFromString("other.org"),
		map[string]crypto.PublicKey{"p256": k.p256.Public()})
	_, err = jwtsvid.ParseAndValidate(good, fixedSource{bundle: other}, svc)
	require.EqualError(t, err, `jwtsvid: no bundle found for trust domain "example.org"`)

	// go-jose's sentinel errors stay reachable behind go-spiffe's messages.
	expired := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("exp", time.Now().Add(-time.Hour).Unix()))
	_, err = jwtsvid.ParseAndValidate(expired, k.bundle(), svc)
	require.ErrorIs(t, err, jwt.ErrExpired)
	_, err = jwtsvid.ParseAndValidate(good, k.bundle(), []string{"nope"})
	require.ErrorIs(t, err, jwt.ErrInvalidAudience)
}

func TestParseInsecure(t *testing.T) {
	k := newKeys(t)
	now := time.Now()
	tests := []struct {
		name     string
		token    string
		audience []string
		wantErr  string
	}{
		{name: "signature not checked", token: testca.SignJWT(t, k.attacker, hdr("ES256", "unknown"), claims()), audience: svc},
		{name: "no kid needed", token: testca.SignJWT(t, k.p256, hdr("ES256", ""), claims()), audience: svc},
		{name: "no audience expected: aud not checked", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("aud", []string{"other"}))},
		{name: "no audience expected, no aud", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("aud", nil))},
		{
			name: "audience expected, not in aud", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("aud", []string{"other"})),
			audience: svc, wantErr: `jwtsvid: expected audience in ["svc"] (audience=["other"])`,
		},
		{
			name: "expired", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("exp", now.Add(-time.Hour).Unix())),
			wantErr: "jwtsvid: token has expired",
		},
		{
			name: "alg none", token: testca.SignJWT(t, nil, hdr("none", "p256"), claims()), // JWT rule 3
			wantErr: "jwtsvid: unable to parse JWT token",
		},
		{
			name: "typ at+jwt", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256", "typ", "at+jwt"), claims()),
			wantErr: "jwtsvid: token header type not equal to either JWT or JOSE",
		},
		{
			name: "sub missing", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims("sub", nil)),
			wantErr: "jwtsvid: token missing subject claim",
		},
		{
			name: "claims not an object", token: testca.SignJWT(t, k.p256, hdr("ES256", "p256"), []byte(`{"sub":"spiffe://example.org/w","exp":9999999999,"x":}`)),
			wantErr: "jwtsvid: unable to get claims from token: ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svid, err := jwtsvid.ParseInsecure(tt.token, tt.audience)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, subject, svid.ID)
			assert.Equal(t, tt.token, svid.Marshal())
		})
	}
}

// fixedSource is a jwtbundle.Source with a fixed answer, for sources that
// misbehave.
type fixedSource struct {
	bundle *jwtbundle.Bundle
	err    error
}

func (s fixedSource) GetJWTBundleForTrustDomain(spiffeid.TrustDomain) (*jwtbundle.Bundle, error) {
	return s.bundle, s.err
}
