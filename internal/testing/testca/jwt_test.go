package testca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

func TestSignJWT(t *testing.T) {
	ec := func(c elliptic.Curve) *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		require.NoError(t, err)
		return k
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	hmacKey := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

	tests := []struct {
		alg       string
		sign, pub any
	}{
		{"ES256", ec(elliptic.P256()), nil},
		{"ES384", ec(elliptic.P384()), nil},
		{"ES512", ec(elliptic.P521()), nil},
		{"RS256", rsaKey, rsaKey.Public()},
		{"RS384", rsaKey, rsaKey.Public()},
		{"RS512", rsaKey, rsaKey.Public()},
		{"PS256", rsaKey, rsaKey.Public()},
		{"PS384", rsaKey, rsaKey.Public()},
		{"PS512", rsaKey, rsaKey.Public()},
		{"HS256", hmacKey, hmacKey},
		{"HS384", hmacKey, hmacKey},
		{"HS512", hmacKey, hmacKey},
		{"EdDSA", edKey, edKey.Public()},
	}
	for _, tt := range tests {
		t.Run(tt.alg, func(t *testing.T) {
			pub := tt.pub
			if k, ok := tt.sign.(*ecdsa.PrivateKey); ok {
				pub = k.Public()
			}
			token := testca.SignJWT(t, tt.sign, map[string]any{"alg": tt.alg, "kid": "k"}, map[string]any{"sub": "x"})
			jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(tt.alg)})
			require.NoError(t, err)
			payload, err := jws.Verify(pub)
			require.NoError(t, err)
			assert.JSONEq(t, `{"sub":"x"}`, string(payload))
			assert.Equal(t, "k", jws.Signatures[0].Header.KeyID)
		})
	}

	t.Run("none and unknown algorithms get an empty signature", func(t *testing.T) {
		for _, alg := range []string{"none", "ES256K", ""} {
			token := testca.SignJWT(t, nil, map[string]any{"alg": alg}, []byte("raw"))
			assert.True(t, strings.HasSuffix(token, "."), token)
			assert.Equal(t, 2, strings.Count(token, "."))
		}
	})

	t.Run("key that does not fit", func(t *testing.T) {
		for _, alg := range []string{"ES256", "RS256", "HS256", "EdDSA"} {
			rec := &recorder{TB: t}
			testca.SignJWT(rec, struct{}{}, map[string]any{"alg": alg}, map[string]any{})
			assert.Contains(t, rec.msg, "does not fit", alg)
		}
		rec := &recorder{TB: t}
		testca.SignJWT(rec, nil, map[string]any{"alg": "none", "bad": func() {}}, map[string]any{})
		assert.Contains(t, rec.msg, "marshal header")
		rec = &recorder{TB: t}
		testca.SignJWT(rec, nil, map[string]any{"alg": "none"}, map[string]any{"bad": func() {}})
		assert.Contains(t, rec.msg, "marshal claims")
	})
}

// recorder is a testing.TB whose Fatalf records the message instead of
// stopping the test, to check SignJWT's error paths.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Fatalf(format string, args ...any) {
	if r.msg == "" {
		r.msg = fmt.Sprintf(format, args...)
	}
}
