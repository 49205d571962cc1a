package azuretest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
	"github.com/stretchr/testify/require"
)

// AttestedFormat is the layout of the attested document's timestamps.
const AttestedFormat = "01/02/06 15:04:05 -0700"

// CA is a certificate chain named like the one that signs Azure's
// attested documents: a root, an intermediate named like Microsoft's
// issuing CAs, served at the leaf's CA Issuers URL by a local server (as
// Azure's leaves name www.microsoft.com), and a leaf for
// metadata.azure.com.
type CA struct {
	Root, Intermediate, Leaf *x509.Certificate
	RootKey, IntKey, LeafKey *rsa.PrivateKey

	// AIA serves the intermediate, DER, at /intermediate.crt.
	AIA *httptest.Server

	aiaFetches atomic.Int32
}

// NewCA makes a chain whose leaf names dnsName (metadata.azure.com for
// Azure's): a root of a key of its own, so that two CAs never verify each
// other's chains, and keys 1 (intermediate) and 2 (leaf) of NewKey.
func NewCA(t testing.TB, dnsName string) *CA {
	t.Helper()
	root, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	ca := &CA{RootKey: root, IntKey: NewKey(1, "").Private, LeafKey: NewKey(2, "").Private}
	ca.AIA = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/intermediate.crt" {
			http.NotFound(w, r)
			return
		}
		ca.aiaFetches.Add(1)
		w.Header().Set("Content-Type", "application/pkix-cert")
		w.Write(ca.Intermediate.Raw)
	}))
	t.Cleanup(ca.AIA.Close)
	now := time.Now()
	ca.Root = certificate(t, &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test Global Root G2", Organization: []string{"Test"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, nil, ca.RootKey, ca.RootKey)
	ca.Intermediate = certificate(t, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "Microsoft Azure RSA TLS Issuing CA 03", Organization: []string{"Microsoft Corporation"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(5 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}, ca.Root, ca.IntKey, ca.RootKey)
	ca.Leaf = certificate(t, &x509.Certificate{
		SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: dnsName, Organization: []string{"Microsoft Corporation"}},
		DNSNames: []string{dnsName}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IssuingCertificateURL: []string{ca.AIA.URL + "/intermediate.crt"},
	}, ca.Intermediate, ca.LeafKey, ca.IntKey)
	return ca
}

// AIAFetches is the number of times the intermediate was served.
func (ca *CA) AIAFetches() int { return int(ca.aiaFetches.Load()) }

// certificate signs tmpl for key's public key with signer, by parent (nil:
// self-signed).
func certificate(t testing.TB, tmpl, parent *x509.Certificate, key, signer *rsa.PrivateKey) *x509.Certificate {
	t.Helper()
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

// Document returns the content of an attested document of a VM, as
// Azure signs it: the nonce asked, a plan, timestamps (created now,
// expiring in six hours), the VM's ID, its subscription and SKU.
func Document(t testing.TB, nonce, vmID, subscription string) []byte {
	t.Helper()
	now := time.Now().UTC()
	b, err := json.Marshal(map[string]any{
		"nonce":          nonce,
		"plan":           map[string]string{"name": "", "product": "", "publisher": ""},
		"timeStamp":      map[string]string{"createdOn": now.Format(AttestedFormat), "expiresOn": now.Add(6 * time.Hour).Format(AttestedFormat)},
		"vmId":           vmID,
		"licenseType":    "",
		"subscriptionId": subscription,
		"sku":            "22_04-lts-gen2",
	})
	require.NoError(t, err)
	return b
}

// Sign returns the base64 PKCS #7 signed-data message of content signed
// by the leaf, with SHA-256, carrying the leaf only, as the metadata
// service's signature field holds it.
func (ca *CA) Sign(t testing.TB, content []byte) string {
	t.Helper()
	return SignWith(t, content, ca.Leaf, ca.LeafKey)
}

// SignWith returns the base64 PKCS #7 signed-data message of content
// signed with key under cert's issuer and serial, SHA-256, whose
// certificate bag holds before, in that order, then cert.
func SignWith(t testing.TB, content []byte, cert *x509.Certificate, key *rsa.PrivateKey, before ...*x509.Certificate) string {
	t.Helper()
	sd, err := pkcs7.NewSignedData(content)
	require.NoError(t, err)
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	for _, c := range before {
		sd.AddCertificate(c)
	}
	require.NoError(t, sd.AddSigner(cert, key, pkcs7.SignerInfoConfig{}))
	der, err := sd.Finish()
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(der)
}
