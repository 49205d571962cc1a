package crossverify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// issuer is a CA built directly with crypto/x509, independent of the
// library's own ca package, so that each row of a test table can break
// exactly one rule.
type issuer struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newECKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	require.NoError(t, err)
	return n.Add(n, big.NewInt(1))
}

func uris(t testing.TB, ss ...string) []*url.URL {
	t.Helper()
	out := make([]*url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		require.NoError(t, err)
		out = append(out, u)
	}
	return out
}

// caTemplate is a well-formed signing certificate (X509 rules 4, 6, 7, 11).
func caTemplate(t testing.TB, name string, uri ...string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{Organization: []string{"conformance"}, CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		URIs:                  uris(t, uri...),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
}

// leafTemplate is a well-formed X509-SVID leaf (X509 rules 1-9).
func leafTemplate(t testing.TB, uri ...string) *x509.Certificate {
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          serial(t),
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		URIs:                  uris(t, uri...),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

func newRoot(t testing.TB, td string) issuer {
	t.Helper()
	key := newECKey(t)
	tmpl := caTemplate(t, td+" root", "spiffe://"+td)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return issuer{cert: cert, key: key}
}

// sign issues tmpl for pub.
func (is issuer) sign(t testing.TB, tmpl *x509.Certificate, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, pub, is.key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// intermediate issues a CA from tmpl and returns it as an issuer.
func (is issuer) intermediate(t testing.TB, tmpl *x509.Certificate) issuer {
	t.Helper()
	key := newECKey(t)
	return issuer{cert: is.sign(t, tmpl, key.Public()), key: key}
}

// leaf issues an end-entity certificate from tmpl with a fresh key.
func (is issuer) leaf(t testing.TB, tmpl *x509.Certificate) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	key := newECKey(t)
	return is.sign(t, tmpl, key.Public()), key
}

func concatDER(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

func rawCerts(certs []*x509.Certificate) [][]byte {
	out := make([][]byte, len(certs))
	for i, c := range certs {
		out[i] = c.Raw
	}
	return out
}

func pkcs8(t testing.TB, key crypto.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return der
}
