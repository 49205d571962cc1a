package pemutil

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newCert(t *testing.T, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now(),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func TestCertificatesRoundTrip(t *testing.T) {
	a, b := newCert(t, "a"), newCert(t, "b")
	encoded := EncodeCertificates([]*x509.Certificate{a, b})

	// Other block types in between are skipped.
	mixed := append(pem.EncodeToMemory(&pem.Block{Type: "OTHER", Bytes: []byte{1}}), encoded...)
	got, err := ParseCertificates(mixed)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, "a", got[0].Subject.CommonName)
	assert.Equal(t, "b", got[1].Subject.CommonName)
}

func TestParseCertificatesErrors(t *testing.T) {
	_, err := ParseCertificates(nil)
	require.ErrorIs(t, err, ErrNoCertificates)

	_, err = ParseCertificates([]byte("not pem at all"))
	require.ErrorIs(t, err, ErrNoCertificates)

	bad := pem.EncodeToMemory(&pem.Block{Type: certType, Bytes: []byte("garbage")})
	_, err = ParseCertificates(bad)
	require.ErrorContains(t, err, "cannot parse certificate 1")
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)

	for name, key := range map[string]any{"ecdsa": ec, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			encoded, err := EncodePKCS8PrivateKey(key)
			require.NoError(t, err)
			// A certificate block before the key is skipped.
			input := append(EncodeCertificates([]*x509.Certificate{newCert(t, "c")}), encoded...)
			signer, err := ParsePrivateKey(input)
			require.NoError(t, err)
			assert.True(t, key.(interface{ Equal(crypto.PrivateKey) bool }).Equal(signer))
		})
	}
}

func TestParsePrivateKeyErrors(t *testing.T) {
	_, err := ParsePrivateKey([]byte("nothing"))
	require.ErrorIs(t, err, ErrNoPrivateKey)

	_, err = ParsePrivateKey(pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: []byte("garbage")}))
	require.ErrorContains(t, err, "cannot parse PKCS#8 private key")

	// An X25519 key is valid PKCS#8 but cannot sign.
	x, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(x)
	require.NoError(t, err)
	_, err = ParsePrivateKeyDER(der)
	require.ErrorContains(t, err, "is not a crypto.Signer")

	_, err = EncodePKCS8PrivateKey(struct{}{})
	require.ErrorContains(t, err, "cannot marshal private key")
}
