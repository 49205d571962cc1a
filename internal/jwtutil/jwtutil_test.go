package jwtutil_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/jwtutil"
)

func TestAlgorithms(t *testing.T) {
	algs := jwtutil.Algorithms()
	require.Len(t, algs, 9)
	algs[0] = "none" // the caller's copy only
	assert.Equal(t, jose.RS256, jwtutil.Algorithms()[0])

	// JWT rule 3, WIT rule 3.
	for _, alg := range []string{"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"} {
		assert.True(t, jwtutil.Allowed(alg), alg)
	}
	for _, alg := range []string{"", "none", "HS256", "EdDSA", "ES256K", "es256"} {
		assert.False(t, jwtutil.Allowed(alg), alg)
	}
}

func TestCheckKeyFitsAlg(t *testing.T) {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	require.NoError(t, err)
	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	require.NoError(t, err)
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	tests := []struct {
		alg     jose.SignatureAlgorithm
		key     crypto.PublicKey
		wantErr string
	}{
		{jose.ES256, p256.Public(), ""},
		{jose.ES512, p521.Public(), ""},
		{jose.ES384, p256.Public(), "key on curve P-256 cannot verify ES384 tokens"},
		{jose.ES512, p256.Public(), "key on curve P-256 cannot verify ES512 tokens"},
		{jose.ES256, p256, "key of type *ecdsa.PrivateKey cannot verify ES256 tokens"},
		{jose.RS256, p256.Public(), "key of type *ecdsa.PublicKey cannot verify RS256 tokens"},
		{jose.PS256, r1024.Public(), "key is a 1024-bit RSA key; PS256 requires at least 2048 bits"},
		{jose.ES256, edPub, "key of type ed25519.PublicKey cannot verify ES256 tokens"},
		{jose.EdDSA, edPub, `unsupported token signature algorithm "EdDSA"`},
		{jose.RS256, (*rsa.PublicKey)(nil), "key of type *rsa.PublicKey cannot verify RS256 tokens"},
	}
	for _, tt := range tests {
		err := jwtutil.CheckKeyFitsAlg(tt.alg, tt.key, "key")
		if tt.wantErr == "" {
			assert.NoError(t, err)
		} else {
			assert.EqualError(t, err, tt.wantErr)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	msg := []byte("message")
	digest := sha256.Sum256(msg)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	require.NoError(t, err)
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])

	require.NoError(t, jwtutil.VerifySignature(jose.ES256, key.Public(), msg, sig))
	require.ErrorIs(t, jwtutil.VerifySignature(jose.ES256, key.Public(), []byte("other"), sig), jwtutil.ErrInvalidSignature)
	require.ErrorIs(t, jwtutil.VerifySignature(jose.ES256, key.Public(), msg, sig[:63]), jwtutil.ErrInvalidSignature)
	require.EqualError(t, jwtutil.VerifySignature(jose.ES384, key.Public(), msg, sig), "key on curve P-256 cannot verify ES384 tokens")

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	pkcs, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA256, digest[:])
	require.NoError(t, err)
	pss, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	require.NoError(t, err)
	require.NoError(t, jwtutil.VerifySignature(jose.RS256, rk.Public(), msg, pkcs))
	require.NoError(t, jwtutil.VerifySignature(jose.PS256, rk.Public(), msg, pss))
	require.ErrorIs(t, jwtutil.VerifySignature(jose.PS256, rk.Public(), msg, pkcs), jwtutil.ErrInvalidSignature)
	require.ErrorIs(t, jwtutil.VerifySignature(jose.RS384, rk.Public(), msg, pkcs), jwtutil.ErrInvalidSignature)

	// The ASN.1 form crypto.Signer returns is not a JWS signature.
	der, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	require.NoError(t, err)
	require.ErrorIs(t, jwtutil.VerifySignature(jose.ES256, key.Public(), msg, der), jwtutil.ErrInvalidSignature)
}
