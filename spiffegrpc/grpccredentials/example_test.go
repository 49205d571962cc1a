package grpccredentials_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffegrpc/grpccredentials"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// whoAmI is a health service that logs the caller's SPIFFE ID.
type whoAmI struct {
	grpc_health_v1.UnimplementedHealthServer
}

func (whoAmI) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	if id, ok := grpccredentials.PeerIDFromContext(ctx); ok {
		fmt.Println("server: call from", id)
	}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// A gRPC server and client authenticate each other with X509-SVIDs over a
// unix socket, and each learns the other's SPIFFE ID. Real workloads take
// the SVIDs and bundle from a workloadapi.X509Source.
func ExampleMTLSServerCredentials() {
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("example.org")
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
	mint := func(path string) *x509svid.SVID {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			log.Fatal(err)
		}
		id := spiffeid.RequireFromPath(td, path)
		chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id})
		if err != nil {
			log.Fatal(err)
		}
		return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
	}
	bundle := x509bundle.FromX509Authorities(td, []*x509.Certificate{root})
	serverSVID, clientSVID := mint("/server"), mint("/client")

	dir, err := os.MkdirTemp("", "grpc")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(
		grpccredentials.MTLSServerCredentials(serverSVID, bundle, tlsconfig.AuthorizeMemberOf(td))))
	grpc_health_v1.RegisterHealthServer(srv, whoAmI{})
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	conn, err := grpc.NewClient("unix://"+ln.Addr().String(), grpc.WithTransportCredentials(
		grpccredentials.MTLSClientCredentials(clientSVID, bundle, tlsconfig.AuthorizeID(serverSVID.ID))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var p peer.Peer
	if _, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		log.Fatal(err)
	}
	id, _ := grpccredentials.PeerIDFromPeer(&p)
	fmt.Println("client: served by", id)
	// Output:
	// server: call from spiffe://example.org/client
	// client: served by spiffe://example.org/server
}
