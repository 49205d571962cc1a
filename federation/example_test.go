package federation_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// A trust domain serves its bundle on a self-serving https_spiffe bundle
// endpoint; a partner, bootstrapped with that bundle out of band, fetches it
// over loopback.
func ExampleFetchBundle() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
	endpointID := spiffeid.RequireFromPath(td, "/bundle-server")

	// example.org's CA, its bundle, and the bundle endpoint's X509-SVID.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	if err != nil {
		log.Fatal(err)
	}
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	if err != nil {
		log.Fatal(err)
	}
	svidKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: svidKey.Public(), ID: endpointID})
	if err != nil {
		log.Fatal(err)
	}
	svid := &x509svid.SVID{ID: endpointID, Certificates: chain, PrivateKey: svidKey}
	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
	bundle.SetRefreshHint(5 * time.Minute)

	// The bundle endpoint: NewHandler over TLS with the X509-SVID.
	handler, err := federation.NewHandler(td, bundle)
	if err != nil {
		log.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: handler, TLSConfig: tlsconfig.TLSServerConfig(svid)}
	go func() { _ = srv.ServeTLS(lis, "", "") }()
	defer srv.Close()

	// The partner: URL, profile (with its endpoint ID and bundle source) and
	// trust domain, all configured explicitly.
	trust := spiffebundle.NewSet(bundle.Clone())
	fetched, err := federation.FetchBundle(ctx, td, "https://"+lis.Addr().String()+"/bundle",
		federation.WithSPIFFEAuth(trust, endpointID))
	if err != nil {
		log.Fatal(err)
	}
	hint, _ := fetched.RefreshHint()
	fmt.Println("trust domain:", fetched.TrustDomain())
	fmt.Println("X.509 authorities:", len(fetched.X509Authorities()))
	fmt.Println("refresh hint:", hint)
	fmt.Println("same bundle:", fetched.Equal(bundle))

	// An endpoint presenting another SPIFFE ID is refused.
	_, err = federation.FetchBundle(ctx, td, "https://"+lis.Addr().String()+"/bundle",
		federation.WithSPIFFEAuth(trust, spiffeid.RequireFromPath(td, "/other")))
	fmt.Println("wrong endpoint ID refused:", err != nil)
	// Output:
	// trust domain: example.org
	// X.509 authorities: 1
	// refresh hint: 5m0s
	// same bundle: true
	// wrong endpoint ID refused: true
}
