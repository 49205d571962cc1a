package witsvid_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/bundle/witbundle"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD = spiffeid.RequireTrustDomainFromString("other.org")
	subject = spiffeid.RequireFromPath(td, "/workload")
)

// keys holds the trust domain's WIT authorities, the workload's cnf keys and
// an attacker's key.
type keys struct {
	p256, p384, p521, attacker *ecdsa.PrivateKey
	rsa2048, rsa1024           *rsa.PrivateKey
	ed                         ed25519.PrivateKey
	workload                   *ecdsa.PrivateKey
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
		p256: ec(elliptic.P256()), p384: ec(elliptic.P384()), p521: ec(elliptic.P521()),
		attacker: ec(elliptic.P256()), rsa2048: r2048, rsa1024: r1024, ed: ed,
		workload: ec(elliptic.P256()),
	}
}

func (k *keys) bundle() *witbundle.Bundle {
	return witbundle.FromWITAuthorities(td, map[string]crypto.PublicKey{
		"p256": k.p256.Public(), "p384": k.p384.Public(), "p521": k.p521.Public(),
		"rsa2048": k.rsa2048.Public(), "rsa1024": k.rsa1024.Public(), "ed": k.ed.Public(),
	})
}

// set returns m with the given name/value pairs set; a nil value deletes.
func set(m map[string]any, kv ...any) map[string]any {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(m, kv[i].(string))
			continue
		}
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func hdr(alg, kid string, kv ...any) map[string]any {
	return set(map[string]any{"alg": alg, "kid": kid, "typ": "wit+jwt"}, kv...)
}

// jwk returns key as a JWK object with the given alg.
func jwk(t testing.TB, key any, alg string) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: key, Algorithm: alg}.MarshalJSON()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}

func claims(t testing.TB, cnfKey crypto.PublicKey, kv ...any) map[string]any {
	t.Helper()
	c := map[string]any{
		"sub": subject.String(),
		"exp": time.Now().Add(time.Hour).Unix(),
		"iat": time.Now().Unix(),
		"jti": "a6e6c6c1",
		"cnf": map[string]any{"jwk": jwk(t, cnfKey, "ES256")},
	}
	return set(c, kv...)
}

// TestParseAndValidate tries to break each validation rule of WIT rules 1-12
// and 18 once; the first rows must be accepted.
func TestParseAndValidate(t *testing.T) {
	k := newKeys(t)
	bundles := witbundle.NewSet(k.bundle())
	now := time.Now()
	wl := k.workload.Public()

	type row struct {
		name    string
		token   func(t *testing.T) string
		wantErr string // empty: accepted
		is      error
	}
	sign := func(key any, h map[string]any, c func(t *testing.T) map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return testca.SignJWT(t, key, h, c(t)) }
	}
	cl := func(kv ...any) func(t *testing.T) map[string]any {
		return func(t *testing.T) map[string]any { return claims(t, wl, kv...) }
	}
	cnfWith := func(key any, kv ...any) func(t *testing.T) map[string]any {
		return func(t *testing.T) map[string]any {
			return claims(t, wl, "cnf", map[string]any{"jwk": set(jwk(t, key, "ES256"), kv...)})
		}
	}
	rows := []row{
		{name: "valid ES256", token: sign(k.p256, hdr("ES256", "p256"), cl())},
		{name: "valid ES384", token: sign(k.p384, hdr("ES384", "p384"), cl())},
		{name: "valid ES512 on P-521", token: sign(k.p521, hdr("ES512", "p521"), cl())},
		{name: "valid RS256", token: sign(k.rsa2048, hdr("RS256", "rsa2048"), cl())},
		{name: "valid PS512", token: sign(k.rsa2048, hdr("PS512", "rsa2048"), cl())},
		{name: "WIT rule 4: unknown extra header ignored", token: sign(k.p256, hdr("ES256", "p256", "x-foo", "bar"), cl())},
		{name: "WIT rule 12: unknown claims ignored", token: sign(k.p256, hdr("ES256", "p256"), cl("iss", "wimse://example.org", "x", 1))},
		{name: "WIT rule 7: exp 30s ago within leeway", token: sign(k.p256, hdr("ES256", "p256"), cl("exp", now.Add(-30*time.Second).Unix()))},
		{name: "WIT rule 8: nbf in the past", token: sign(k.p256, hdr("ES256", "p256"), cl("nbf", now.Add(-time.Minute).Unix()))},
		{name: "WIT rule 18: trust-domain-only sub", token: sign(k.p256, hdr("ES256", "p256"), cl("sub", "spiffe://example.org"))},

		// Header.
		{name: "WIT rule 1: kid missing", token: sign(k.p256, hdr("ES256", "", "kid", nil), cl()), wantErr: "witsvid: token header missing key id"},
		{name: "WIT rule 1: kid empty", token: sign(k.p256, hdr("ES256", ""), cl()), wantErr: "witsvid: token header missing key id"},
		{name: "WIT rule 1: kid compared case-sensitively", token: sign(k.p256, hdr("ES256", "P256"), cl()), wantErr: `witsvid: no WIT authority "P256" found for trust domain "example.org"`},
		{name: "WIT rule 2: typ missing", token: sign(k.p256, hdr("ES256", "p256", "typ", nil), cl()), wantErr: `witsvid: token header type must be "wit+jwt", got ""`},
		{name: "WIT rule 2: typ JWT", token: sign(k.p256, hdr("ES256", "p256", "typ", "JWT"), cl()), wantErr: `witsvid: token header type must be "wit+jwt", got "JWT"`},
		{name: "WIT rule 2: typ case differs", token: sign(k.p256, hdr("ES256", "p256", "typ", "WIT+JWT"), cl()), wantErr: `witsvid: token header type must be "wit+jwt", got "WIT+JWT"`},
		{name: "WIT rule 2: typ not a string", token: sign(k.p256, hdr("ES256", "p256", "typ", 1), cl()), wantErr: `witsvid: token header type must be "wit+jwt", got ""`},
		{name: "WIT rule 3: alg none", token: sign(nil, hdr("none", "p256"), cl()), wantErr: "witsvid: unable to parse WIT-SVID token"},
		{name: "WIT rule 3: alg HS256", token: sign([]byte("secret"), hdr("HS256", "p256"), cl()), wantErr: "witsvid: unable to parse WIT-SVID token"},
		{name: "WIT rule 3: alg EdDSA", token: sign(k.ed, hdr("EdDSA", "ed"), cl()), wantErr: "witsvid: unable to parse WIT-SVID token"},
		{name: "WIT rule 3: RSA key for ES256", token: sign(k.p256, hdr("ES256", "rsa2048"), cl()), wantErr: "witsvid: WIT authority of type *rsa.PublicKey cannot verify ES256 tokens"},
		{name: "WIT rule 3: P-384 key for ES256", token: sign(k.p256, hdr("ES256", "p384"), cl()), wantErr: "witsvid: WIT authority on curve P-384 cannot verify ES256 tokens"},
		{name: "WIT rule 3: 1024-bit RSA key", token: sign(k.rsa1024, hdr("RS256", "rsa1024"), cl()), wantErr: "witsvid: WIT authority is a 1024-bit RSA key; RS256 requires at least 2048 bits"},
		{name: "WIT rule 3: Ed25519 authority for ES256", token: sign(k.p256, hdr("ES256", "ed"), cl()), wantErr: "witsvid: WIT authority of type ed25519.PublicKey cannot verify ES256 tokens"},
		{name: "WIT rule 4: crit with unknown parameter", token: sign(k.p256, hdr("ES256", "p256", "crit", []string{"x-foo"}, "x-foo", 1), cl()), wantErr: "witsvid: signature verification failed: go-jose/go-jose: unsupported critical header"},

		// Signature and bundle.
		{name: "signed by a key outside the bundle", token: sign(k.attacker, hdr("ES256", "p256"), cl()), wantErr: "witsvid: signature verification failed: go-jose/go-jose: error in cryptographic primitive"},
		{name: "unknown kid", token: sign(k.p256, hdr("ES256", "nope"), cl()), wantErr: `witsvid: no WIT authority "nope" found for trust domain "example.org"`},
		{name: "sub in a trust domain without a bundle", token: sign(k.p256, hdr("ES256", "p256"), cl("sub", "spiffe://other.org/w")), wantErr: `witsvid: no WIT bundle found for trust domain "other.org"`},

		// Claims.
		{name: "WIT rule 5: sub missing", token: sign(k.p256, hdr("ES256", "p256"), cl("sub", nil)), wantErr: "witsvid: token missing subject claim"},
		{name: "WIT rule 5: sub not a SPIFFE ID", token: sign(k.p256, hdr("ES256", "p256"), cl("sub", "not-a-spiffe-id")), wantErr: "witsvid: token has an invalid subject claim: spiffeid: scheme is missing or invalid"},
		{name: "WIT rule 6: cnf missing", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", nil)), wantErr: "witsvid: token missing cnf claim"},
		{name: "WIT rule 6: cnf not an object", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", "key")), wantErr: "witsvid: cnf claim is not an object"},
		{name: "WIT rule 6: cnf null", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", json.RawMessage("null"))), wantErr: "witsvid: cnf claim is not an object"},
		{name: "WIT rule 6: cnf without jwk", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", map[string]any{"jkt": "abc"})), wantErr: "witsvid: cnf claim missing jwk field"},
		{name: "WIT rule 6: cnf.jwk not an object", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", map[string]any{"jwk": []int{1}})), wantErr: "witsvid: cnf.jwk is not an object"},
		{name: "WIT rule 6: cnf.jwk alg missing", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "alg", nil)), wantErr: "witsvid: cnf.jwk missing alg field"},
		{name: "WIT rule 6: cnf.jwk alg not a string", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "alg", 7)), wantErr: "witsvid: cnf.jwk alg field is not a string"},
		{name: "WIT rule 6: cnf.jwk alg EdDSA", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(k.ed.Public(), "alg", "EdDSA")), wantErr: `witsvid: cnf.jwk alg "EdDSA" is not supported`},
		{name: "WIT rule 6: cnf.jwk alg none", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "alg", "none")), wantErr: `witsvid: cnf.jwk alg "none" is not supported`},
		{name: "WIT rule 6: cnf.jwk alg does not fit the curve", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "alg", "ES384")), wantErr: "witsvid: cnf.jwk key on curve P-256 cannot verify ES384 tokens"},
		{name: "WIT rule 6: cnf.jwk RSA key for ES256", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(k.rsa2048.Public())), wantErr: "witsvid: cnf.jwk key of type *rsa.PublicKey cannot verify ES256 tokens"},
		{name: "WIT rule 6: cnf.jwk 1024-bit RSA key", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(k.rsa1024.Public(), "alg", "PS256")), wantErr: "witsvid: cnf.jwk key is a 1024-bit RSA key; PS256 requires at least 2048 bits"},
		{name: "WIT rule 18: cnf.jwk is a private key", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(k.workload)), wantErr: `witsvid: cnf.jwk must be a public key: key 0 carries private key member "d"`},
		{name: "WIT rule 18: cnf.jwk symmetric key", token: sign(k.p256, hdr("ES256", "p256"), cl("cnf", map[string]any{"jwk": map[string]any{"kty": "oct", "alg": "ES256"}})), wantErr: "witsvid: cnf.jwk must be a public key: key 0 is a symmetric (oct) key"},
		{name: "WIT rule 6: cnf.jwk without kty", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "kty", nil)), wantErr: "witsvid: unable to parse cnf.jwk: missing or unknown key type"},
		{name: "WIT rule 6: cnf.jwk point not on the curve", token: sign(k.p256, hdr("ES256", "p256"), cnfWith(wl, "x", "AAAA")), wantErr: "witsvid: unable to parse cnf.jwk: "},
		{name: "WIT rule 7: exp missing", token: sign(k.p256, hdr("ES256", "p256"), cl("exp", nil)), wantErr: "witsvid: token missing exp claim"},
		{name: "WIT rule 7: exp 90s ago", token: sign(k.p256, hdr("ES256", "p256"), cl("exp", now.Add(-90*time.Second).Unix())), wantErr: "witsvid: token has expired", is: jwt.ErrExpired},
		{name: "WIT rule 7: exp as a string", token: sign(k.p256, hdr("ES256", "p256"), cl("exp", "4102444800")), wantErr: "witsvid: unable to parse standard claims: "},
		{name: "WIT rule 8: nbf in the future", token: sign(k.p256, hdr("ES256", "p256"), cl("nbf", now.Add(5*time.Minute).Unix())), wantErr: "witsvid: token is not yet valid", is: jwt.ErrNotValidYet},
		{name: "WIT rule 18: iat in the future", token: sign(k.p256, hdr("ES256", "p256"), cl("iat", now.Add(5*time.Minute).Unix())), wantErr: "witsvid: ", is: jwt.ErrIssuedInTheFuture},
		{name: "WIT rule 12: aud present", token: sign(k.p256, hdr("ES256", "p256"), cl("aud", []string{"svc"})), wantErr: "witsvid: WIT-SVID must not contain aud claim"},
		{name: "WIT rule 12: aud as a string", token: sign(k.p256, hdr("ES256", "p256"), cl("aud", "svc")), wantErr: "witsvid: WIT-SVID must not contain aud claim"},
		{name: "WIT rule 12: aud empty array", token: sign(k.p256, hdr("ES256", "p256"), cl("aud", []string{})), wantErr: "witsvid: WIT-SVID must not contain aud claim"},
		{name: "WIT rule 12: aud null", token: sign(k.p256, hdr("ES256", "p256"), cl("aud", json.RawMessage("null"))), wantErr: "witsvid: unable to parse standard claims: "},

		// Serialization.
		{name: "not a JWS", token: func(*testing.T) string { return "a.b" }, wantErr: "witsvid: unable to parse WIT-SVID token"},
		{name: "JWS JSON serialization", token: func(t *testing.T) string {
			tok := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, wl))
			p := strings.Split(tok, ".")
			return `{"protected":"` + p[0] + `","payload":"` + p[1] + `","signature":"` + p[2] + `"}`
		}, wantErr: "witsvid: unable to parse WIT-SVID token"},
		{name: "too long", token: func(*testing.T) string { return strings.Repeat("a", witsvid.MaxTokenLength+1) }, wantErr: "witsvid: token is too long: 16385 bytes, the maximum is 16384"},
	}
	for _, tt := range rows {
		t.Run(tt.name, func(t *testing.T) {
			token := tt.token(t)
			svid, err := witsvid.ParseAndValidate(token, bundles)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, token, svid.Marshal())
				assert.Equal(t, "ES256", svid.KeyAlgorithm())
				assert.True(t, k.workload.PublicKey.Equal(svid.PublicKey))
				assert.Nil(t, svid.PrivateKey)
				return
			}
			require.Error(t, err)
			assert.Nil(t, svid)
			if strings.HasSuffix(tt.wantErr, ": ") {
				assert.True(t, strings.HasPrefix(err.Error(), tt.wantErr), err.Error())
			} else {
				assert.EqualError(t, err, tt.wantErr)
			}
			if tt.is != nil {
				assert.ErrorIs(t, err, tt.is)
			}
		})
	}
}

func TestParseAndValidateFields(t *testing.T) {
	k := newKeys(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	token := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, k.workload.Public(), "exp", exp.Unix()))

	svid, err := witsvid.ParseAndValidate(token, k.bundle())
	require.NoError(t, err)
	assert.Equal(t, subject, svid.ID)
	assert.Equal(t, exp.UTC(), svid.Expiry)
	assert.Equal(t, time.UTC, svid.Expiry.Location())
	assert.Equal(t, "p256", svid.KeyID)
	assert.Empty(t, svid.Hint)

	insecure, err := witsvid.ParseInsecure(token)
	require.NoError(t, err)
	assert.Equal(t, svid, insecure)
}

// TestParseAndValidateSource covers bundle sources that fail or misbehave:
// only a bundle of the sub's own trust domain may verify the token.
func TestParseAndValidateSource(t *testing.T) {
	k := newKeys(t)
	token := testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, k.workload.Public()))

	_, err := witsvid.ParseAndValidate(token, nil)
	require.EqualError(t, err, "witsvid: bundle source is required")

	// A bundle of another trust domain holding the very key.
	foreign := witbundle.FromWITAuthorities(otherTD, map[string]crypto.PublicKey{"p256": k.p256.Public()})
	_, err = witsvid.ParseAndValidate(token, foreign)
	require.EqualError(t, err, `witsvid: no WIT bundle found for trust domain "example.org"`)

	_, err = witsvid.ParseAndValidate(token, lyingSource{bundle: foreign})
	require.EqualError(t, err, `witsvid: no WIT bundle found for trust domain "example.org"`)
	_, err = witsvid.ParseAndValidate(token, lyingSource{})
	require.EqualError(t, err, `witsvid: no WIT bundle found for trust domain "example.org"`)

	errDown := errors.New("down")
	_, err = witsvid.ParseAndValidate(token, lyingSource{err: errDown})
	require.ErrorIs(t, err, errDown)
}

// lyingSource returns its bundle for every trust domain.
type lyingSource struct {
	bundle *witbundle.Bundle
	err    error
}

func (s lyingSource) GetWITBundleForTrustDomain(spiffeid.TrustDomain) (*witbundle.Bundle, error) {
	return s.bundle, s.err
}

// TestParseInsecure checks that everything but the signature is still
// validated.
func TestParseInsecure(t *testing.T) {
	k := newKeys(t)
	wl := k.workload.Public()

	// Signed by anyone: accepted.
	svid, err := witsvid.ParseInsecure(testca.SignJWT(t, k.attacker, hdr("ES256", "unknown"), claims(t, wl)))
	require.NoError(t, err)
	assert.Equal(t, subject, svid.ID)
	assert.Equal(t, "unknown", svid.KeyID)

	for _, tt := range []struct {
		name    string
		token   string
		wantErr string
	}{
		{"WIT rule 2: typ JWT", testca.SignJWT(t, k.p256, hdr("ES256", "p256", "typ", "JWT"), claims(t, wl)), `witsvid: token header type must be "wit+jwt", got "JWT"`},
		{"WIT rule 12: aud", testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, wl, "aud", "x")), "witsvid: WIT-SVID must not contain aud claim"},
		{"WIT rule 7: expired", testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, wl, "exp", time.Now().Add(-time.Hour).Unix())), "witsvid: token has expired"},
		{"WIT rule 6: no cnf", testca.SignJWT(t, k.p256, hdr("ES256", "p256"), claims(t, wl, "cnf", nil)), "witsvid: token missing cnf claim"},
		{"WIT rule 3: alg none", testca.SignJWT(t, nil, hdr("none", "p256"), claims(t, wl)), "witsvid: unable to parse WIT-SVID token"},
		{"payload not an object", testca.SignJWT(t, k.p256, hdr("ES256", "p256"), []byte(`[1]`)), "witsvid: unable to parse standard claims: "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := witsvid.ParseInsecure(tt.token)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tt.wantErr), err.Error())
		})
	}
}

// popSign makes a JWS signature of message with key, as a workload proving
// possession of its cnf key would.
func popSign(t *testing.T, key crypto.Signer, alg string, message []byte) []byte {
	t.Helper()
	var digest []byte
	var h crypto.Hash
	switch alg[2:] {
	case "256":
		s := sha256.Sum256(message)
		digest, h = s[:], crypto.SHA256
	case "384":
		s := sha512.Sum384(message)
		digest, h = s[:], crypto.SHA384
	default:
		s := sha512.Sum512(message)
		digest, h = s[:], crypto.SHA512
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		require.NoError(t, err)
		size := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*size)
		r.FillBytes(out[:size])
		s.FillBytes(out[size:])
		return out
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if alg[0] == 'P' {
			sig, err = rsa.SignPSS(rand.Reader, k, h, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, k, h, digest)
		}
		require.NoError(t, err)
		return sig
	}
	t.Fatalf("unsupported key %T", key)
	return nil
}

// TestVerifyProofOfPossession checks the simple proof of possession of WIT
// rule 15 for each kind of cnf key.
func TestVerifyProofOfPossession(t *testing.T) {
	k := newKeys(t)
	challenge := []byte("nonce-7f3a: POST https://reports.example.org/v1")

	for _, tt := range []struct {
		alg string
		key crypto.Signer
	}{
		{"ES256", k.workload}, {"ES384", k.p384}, {"ES512", k.p521},
		{"RS256", k.rsa2048}, {"RS384", k.rsa2048}, {"PS256", k.rsa2048}, {"PS512", k.rsa2048},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			c := claims(t, tt.key.Public(), "cnf", map[string]any{"jwk": jwk(t, tt.key.Public(), tt.alg)})
			svid, err := witsvid.ParseAndValidate(testca.SignJWT(t, k.p256, hdr("ES256", "p256"), c), k.bundle())
			require.NoError(t, err)
			require.Equal(t, tt.alg, svid.KeyAlgorithm())

			require.NoError(t, svid.VerifyProofOfPossession(challenge, popSign(t, tt.key, tt.alg, challenge)))

			// WIT rule 15: a proof for another message, by another key, or
			// truncated is no proof.
			err = svid.VerifyProofOfPossession([]byte("other"), popSign(t, tt.key, tt.alg, challenge))
			require.ErrorIs(t, err, witsvid.ErrInvalidProof)
			err = svid.VerifyProofOfPossession(challenge, popSign(t, k.attacker, "ES256", challenge))
			require.ErrorIs(t, err, witsvid.ErrInvalidProof)
			sig := popSign(t, tt.key, tt.alg, challenge)
			err = svid.VerifyProofOfPossession(challenge, sig[:len(sig)-1])
			require.ErrorIs(t, err, witsvid.ErrInvalidProof)
			require.ErrorIs(t, svid.VerifyProofOfPossession(challenge, nil), witsvid.ErrInvalidProof)
		})
	}

	t.Run("no confirmation key", func(t *testing.T) {
		svid := &witsvid.SVID{ID: subject, PublicKey: k.workload.Public()}
		err := svid.VerifyProofOfPossession(challenge, popSign(t, k.workload, "ES256", challenge))
		require.EqualError(t, err, "witsvid: WIT-SVID has no confirmation key")
	})
}
