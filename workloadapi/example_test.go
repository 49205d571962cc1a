package workloadapi_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func ExampleNewX509Source() {
	ctx := context.Background()
	addr, stop := startExampleServer()
	defer stop()

	source, err := workloadapi.NewX509Source(ctx,
		workloadapi.WithClientOptions(workloadapi.WithAddr(addr)))
	if err != nil {
		log.Fatal(err)
	}
	defer source.Close()

	svid, err := source.GetX509SVID()
	if err != nil {
		log.Fatal(err)
	}
	bundle, err := source.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(svid.ID)
	fmt.Println(len(bundle.X509Authorities()), "root")
	// Output:
	// spiffe://example.org/web
	// 1 root
}

func ExampleFetchJWTSVID() {
	ctx := context.Background()
	addr, stop := startExampleServer()
	defer stop()

	svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "spiffe://example.org/db"},
		workloadapi.WithAddr(addr))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(svid.ID, svid.Audience)
	// Output: spiffe://example.org/web [spiffe://example.org/db]
}

// startExampleServer runs an in-process CA and a Workload API server
// (workloadapi/endpoint) on a unix socket, giving every process of this user
// the identity spiffe://example.org/web, and returns the socket's address.
func startExampleServer() (addr string, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/web")
	must := func(err error) {
		if err != nil {
			log.Fatal(err)
		}
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	must(err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
	must(err)
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	jwtAuthority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: jwtKey})
	must(err)

	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
	must(bundle.AddJWTAuthority(jwtAuthority.KeyID(), jwtAuthority.PublicKey()))
	handler := endpoint.NewMemoryHandler(endpoint.MemoryConfig{
		SignJWT: func(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
			return jwtAuthority.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience})
		},
	})
	must(handler.Set(strconv.Itoa(os.Getuid()), &endpoint.Snapshot{
		TrustDomain: td,
		X509SVIDs:   []*x509svid.SVID{{ID: id, Certificates: chain, PrivateKey: key}},
		Bundles:     []*spiffebundle.Bundle{bundle},
	}))

	dir, err := os.MkdirTemp("", "wl")
	must(err)
	path := filepath.Join(dir, "agent.sock")
	lis, err := endpoint.ListenUnix(path, 0o700)
	must(err)
	srv, err := endpoint.New(endpoint.Config{Handler: handler})
	must(err)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	return "unix://" + path, func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
}
