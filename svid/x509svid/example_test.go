package x509svid_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func ExampleParseAndVerify() {
	// A trust domain's root CA and a workload leaf it signed. In real use the
	// leaf chain comes from the TLS peer and the bundle from the Workload API.
	td := spiffeid.RequireTrustDomainFromString("example.org")
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		URIs:                  []*url.URL{td.ID().URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	caCert, _ := x509.ParseCertificate(caDER)

	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		URIs:                  []*url.URL{spiffeid.RequireFromPath(td, "/payments").URL()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(time.Hour),
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	leafDER, _ := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, leafKey.Public(), caKey)

	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{caCert})
	id, chains, err := x509svid.ParseAndVerify([][]byte{leafDER}, bundle)
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println("authenticated:", id)
	fmt.Println("chain length:", len(chains[0]))

	// The same leaf presented to a relying party that trusts another trust
	// domain only.
	other := x509bundle.New(spiffeid.RequireTrustDomainFromString("other.org"))
	_, _, err = x509svid.ParseAndVerify([][]byte{leafDER}, other)
	fmt.Println(err != nil)
	// Output:
	// authenticated: spiffe://example.org/payments
	// chain length: 2
	// true
}
