package svidcheck

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

func TestWIT(t *testing.T) {
	caKey := testca.NewECKey(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	sign := func(header map[string]any, claims any) string {
		return testca.SignJWT(t, caKey, header, claims)
	}
	header := map[string]any{"alg": "ES256", "kid": "k1"}
	claims := func(sub string, pub any) map[string]any {
		return map[string]any{"sub": sub, "exp": exp.Unix(), "cnf": map[string]any{"jwk": jose.JSONWebKey{Key: pub}}}
	}
	gotExp, kid, err := WIT(sign(header, claims(webID.String(), key.Public())), webID, key.Public())
	require.NoError(t, err)
	require.Equal(t, "k1", kid)
	require.True(t, exp.Equal(gotExp))

	for name, tc := range map[string]struct {
		token, want string
	}{
		"not a JWS":        {"a.b", "the WIT-SVID is not a compact JWS"},
		"a bad header":     {"!.e30.c2ln", "decoding the WIT-SVID's header"},
		"a header no JSON": {"bm9wZQ.e30.c2ln", "decoding the WIT-SVID's header"},
		"bad claims":       {"e30.!.c2ln", "decoding the WIT-SVID's claims"},
		"claims no JSON":   {"e30.bm9wZQ.c2ln", "decoding the WIT-SVID's claims"},
		"no kid":           {sign(map[string]any{"alg": "ES256"}, claims(webID.String(), key.Public())), "has no kid"},
		"another subject":  {sign(header, claims("spiffe://example.org/db", key.Public())), `names "spiffe://example.org/db"`},
		"another key":      {sign(header, claims(webID.String(), other.Public())), "binds another key"},
		"no key":           {sign(header, map[string]any{"sub": webID.String(), "exp": exp.Unix()}), "binds another key"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := WIT(tc.token, webID, key.Public())
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestJWTExpiry(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	token := testca.SignJWT(t, testca.NewECKey(t), map[string]any{"alg": "ES256", "kid": "k2"},
		map[string]any{"sub": webID.String(), "exp": exp.Unix()})
	got, kid, err := JWTExpiry(token)
	require.NoError(t, err)
	require.Equal(t, "k2", kid)
	require.True(t, exp.Equal(got))

	for token, want := range map[string]string{
		"x":               "token is not a compact JWS",
		"!.e30.c2ln":      "decoding the token's header",
		"e30.!.c2ln":      "decoding the token's claims",
		"e30.bm9wZQ.c2ln": "decoding the token's claims",
	} {
		_, _, err := JWTExpiry(token)
		require.ErrorContains(t, err, want, token)
	}
}
