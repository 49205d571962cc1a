package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net/url"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/stretchr/testify/require"
)

var (
	td      = spiffeid.RequireTrustDomainFromString("example.org")
	otherTD = spiffeid.RequireTrustDomainFromString("other.org")
	// testNow is a fixed clock; certificates are verified at this time.
	testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func clock() time.Time { return testNow }

func newP256(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func newECKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	require.NoError(t, err)
	return k
}

// rsaKeys caches generated RSA keys by size; generating them is slow.
var rsaKeys = map[int]*rsa.PrivateKey{}

func newRSA(t testing.TB, bits int) *rsa.PrivateKey {
	t.Helper()
	if k, ok := rsaKeys[bits]; ok {
		return k
	}
	if bits < 1024 {
		t.Setenv("GODEBUG", "rsa1024min=0")
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	require.NoError(t, err)
	rsaKeys[bits] = k
	return k
}

// newRoot makes a self-signed root for td with a fresh P-256 key and an
// authority over it, on the test clock.
func newRoot(t testing.TB, ttl time.Duration) (*ca.X509Authority, *ecdsa.PrivateKey) {
	t.Helper()
	key := newP256(t)
	root, err := ca.CreateRoot(t.Context(), ca.RootParams{Signer: key, TrustDomain: td, TTL: ttl, Now: clock})
	require.NoError(t, err)
	a, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root, Now: clock})
	require.NoError(t, err)
	return a, key
}

// certTemplate is a plain CA template for building unusual authorities.
func caCert(t testing.TB, tmpl *x509.Certificate, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	if tmpl.SerialNumber == nil {
		tmpl.SerialNumber = big.NewInt(1)
	}
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = testNow.Add(-time.Hour)
		tmpl.NotAfter = testNow.Add(24 * time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func plainCA(cn string, uris ...string) *x509.Certificate {
	var u []*url.URL
	for _, s := range uris {
		parsed, err := url.Parse(s)
		if err != nil {
			panic(err)
		}
		u = append(u, parsed)
	}
	return &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  u,
	}
}

// extension returns the extension with the given OID, or nil.
func extension(cert *x509.Certificate, oid asn1.ObjectIdentifier) *pkix.Extension {
	for i := range cert.Extensions {
		if cert.Extensions[i].Id.Equal(oid) {
			return &cert.Extensions[i]
		}
	}
	return nil
}

var (
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
)

func mustID(s string) spiffeid.ID { return spiffeid.RequireFromString(s) }

func mustTD(s string) spiffeid.TrustDomain { return spiffeid.RequireTrustDomainFromString(s) }
