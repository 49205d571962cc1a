package workloadapi_test

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

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"google.golang.org/grpc"
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

// exampleServer is a minimal Workload API server issuing one identity.
type exampleServer struct {
	workloadpb.UnimplementedWorkloadAPIServer
	x509 *workloadpb.X509SVIDResponse
	jwt  *ca.JWTAuthority
	id   spiffeid.ID
}

func (s *exampleServer) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	if err := stream.Send(s.x509); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (s *exampleServer) FetchJWTSVID(ctx context.Context, req *workloadpb.JWTSVIDRequest) (*workloadpb.JWTSVIDResponse, error) {
	token, err := s.jwt.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: s.id, Audience: req.GetAudience()})
	if err != nil {
		return nil, err
	}
	return &workloadpb.JWTSVIDResponse{Svids: []*workloadpb.JWTSVID{{SpiffeId: s.id.String(), Svid: token}}}, nil
}

// startExampleServer runs an in-process CA and Workload API server on a unix
// socket and returns its address.
func startExampleServer() (addr string, stop func()) {
	ctx := context.Background()
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
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(err)
	jwtKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	jwtAuthority, err := ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: jwtKey})
	must(err)

	svid := &workloadpb.X509SVID{SpiffeId: id.String(), X509SvidKey: keyDER, Bundle: root.Raw}
	for _, c := range chain[:len(chain)-1] { // the leaf; the root goes in the bundle
		svid.X509Svid = append(svid.X509Svid, c.Raw...)
	}

	dir, err := os.MkdirTemp("", "wl")
	must(err)
	path := filepath.Join(dir, "agent.sock")
	lis, err := net.Listen("unix", path)
	must(err)
	srv := grpc.NewServer()
	workloadpb.RegisterWorkloadAPIServer(srv, &exampleServer{
		x509: &workloadpb.X509SVIDResponse{Svids: []*workloadpb.X509SVID{svid}},
		jwt:  jwtAuthority,
		id:   id,
	})
	go func() { _ = srv.Serve(lis) }()
	return "unix://" + path, func() {
		srv.Stop()
		os.RemoveAll(dir)
	}
}
