package x509bundle_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// newExampleRoot makes a throwaway self-signed CA certificate.
func newExampleRoot(name string) *x509.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		panic(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return cert
}

func ExampleSet() {
	local := spiffeid.RequireTrustDomainFromString("example.org")
	partner := spiffeid.RequireTrustDomainFromString("partner.example")

	set := x509bundle.NewSet(
		x509bundle.FromX509Authorities(local, []*x509.Certificate{newExampleRoot("local root")}),
		x509bundle.FromX509Authorities(partner, []*x509.Certificate{newExampleRoot("partner root")}),
	)

	// Verifiers take a Source and pick the bundle by the SVID's trust domain.
	var source x509bundle.Source = set
	bundle, err := source.GetX509BundleForTrustDomain(partner)
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.TrustDomain(), bundle.X509Authorities()[0].Subject.CommonName)

	_, err = source.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("unknown.example"))
	fmt.Println(err)

	for _, b := range set.Bundles() {
		fmt.Println(b.TrustDomain(), len(b.X509Authorities()))
	}
	// Output:
	// partner.example partner root
	// x509bundle: no X.509 bundle for trust domain "unknown.example"
	// example.org 1
	// partner.example 1
}

func ExampleParse() {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root := newExampleRoot("example.org root")

	pemBytes, _ := x509bundle.FromX509Authorities(td, []*x509.Certificate{root}).Marshal()
	bundle, err := x509bundle.Parse(td, pemBytes)
	if err != nil {
		panic(err)
	}
	fmt.Println(bundle.HasX509Authority(root))
	// Output: true
}
