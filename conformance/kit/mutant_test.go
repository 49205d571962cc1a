package kit_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	wapi "github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// mutant is a Workload API server built on go-spiffe's generated stubs
// that can be broken on purpose, one rule family at a time, for the
// mutation tests: the kit must fail exactly the rule broken.
type mutant struct {
	wapi.UnimplementedSpiffeWorkloadAPIServer

	noHeaderCheck bool         // serve requests without the security header (WE rule 6)
	caLeaf        bool         // serve a leaf with cA true (X509 rule 4)
	algNone       bool         // serve JWT-SVIDs with alg none (JWT rule 3)
	noKid         bool         // no kid on the JWT key, nor on the tokens (Bundle rule 16)
	dupHint       bool         // two X509-SVIDs with one hint (WAPI rule 8)
	deny          bool         // the caller is entitled to nothing (WAPI rule 10b)
	witMut        *witMutation // serve the WIT profile, broken so; nil: Unimplemented

	root   *testca.CA
	key    *ecdsa.PrivateKey
	witKey *ecdsa.PrivateKey // signs the WIT-SVIDs
}

func newMutant(t testing.TB) *mutant {
	return &mutant{root: testca.New(t, exampleTD), key: testca.NewECKey(t), witKey: testca.NewECKey(t)}
}

func (m *mutant) kid() string {
	if m.noKid {
		return ""
	}
	return "k1"
}

func (m *mutant) checkHeader(ctx context.Context) error {
	if m.noHeaderCheck {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	return nil
}

// serve serves m on a unix socket until the test ends and returns its
// address.
func (m *mutant) serve(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kit")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "api.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)
	m.serveOn(t, lis)
	return "unix://" + sock
}

// serveOn serves m on lis until the test ends.
func (m *mutant) serveOn(t testing.TB, lis net.Listener) {
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := m.checkHeader(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := m.checkHeader(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	wapi.RegisterSpiffeWorkloadAPIServer(srv, m)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
}

func (m *mutant) FetchX509SVID(_ *wapi.X509SVIDRequest, stream grpc.ServerStreamingServer[wapi.X509SVIDResponse]) error {
	if m.deny {
		return status.Error(codes.PermissionDenied, "no identity issued")
	}
	var svids []*wapi.X509SVID
	for _, path := range []string{"/workload", "/other"} {
		svid, err := m.mint(path)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		svids = append(svids, svid)
	}
	svids[0].Hint = "internal"
	if m.dupHint {
		svids[1].Hint = "internal"
	}
	if err := stream.Send(&wapi.X509SVIDResponse{Svids: svids}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// mint makes an X509-SVID for path in example.org.
func (m *mutant) mint(path string) (*wapi.X509SVID, error) {
	key := testca.NewECKey(panicTB{})
	chain, _ := m.root.NewLeaf(panicTB{}, spiffeid.RequireFromPath(exampleTD, path), testca.WithKey(key), testca.WithTemplate(func(c *x509.Certificate) {
		c.IsCA = m.caLeaf
	}))
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &wapi.X509SVID{
		SpiffeId:    spiffeid.RequireFromPath(exampleTD, path).String(),
		X509Svid:    chain[0].Raw,
		X509SvidKey: der,
		Bundle:      m.root.Cert().Raw,
	}, nil
}

func (m *mutant) FetchX509Bundles(_ *wapi.X509BundlesRequest, stream grpc.ServerStreamingServer[wapi.X509BundlesResponse]) error {
	if m.deny {
		return status.Error(codes.PermissionDenied, "no identity issued")
	}
	if err := stream.Send(&wapi.X509BundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": m.root.Cert().Raw}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (m *mutant) FetchJWTBundles(_ *wapi.JWTBundlesRequest, stream grpc.ServerStreamingServer[wapi.JWTBundlesResponse]) error {
	if m.deny {
		return status.Error(codes.PermissionDenied, "no identity issued")
	}
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: m.key.Public(), KeyID: m.kid()}}})
	if err != nil {
		return err
	}
	if err := stream.Send(&wapi.JWTBundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": set}}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (m *mutant) FetchJWTSVID(_ context.Context, req *wapi.JWTSVIDRequest) (*wapi.JWTSVIDResponse, error) {
	if len(req.GetAudience()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if m.deny {
		return nil, status.Error(codes.PermissionDenied, "no identity issued")
	}
	header := map[string]any{"alg": "ES256", "typ": "JWT"}
	if m.kid() != "" {
		header["kid"] = m.kid()
	}
	if m.algNone {
		header["alg"] = "none"
	}
	id := "spiffe://example.org/workload"
	token := testca.SignJWT(panicTB{}, m.key, header, map[string]any{"sub": id, "aud": req.GetAudience(), "exp": time.Now().Add(5 * time.Minute).Unix()})
	return &wapi.JWTSVIDResponse{Svids: []*wapi.JWTSVID{{SpiffeId: id, Svid: token}}}, nil
}

func (m *mutant) ValidateJWTSVID(_ context.Context, req *wapi.ValidateJWTSVIDRequest) (*wapi.ValidateJWTSVIDResponse, error) {
	if req.GetAudience() == "" || req.GetSvid() == "" {
		return nil, status.Error(codes.InvalidArgument, "audience and svid must be specified")
	}
	jws, err := jose.ParseSigned(req.GetSvid(), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	payload, err := jws.Verify(m.key.Public())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	s, err := structpb.NewStruct(claims)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	sub, _ := claims["sub"].(string)
	return &wapi.ValidateJWTSVIDResponse{SpiffeId: sub, Claims: s}, nil
}

// panicTB is the testing.TB of the helpers that mint inside the server's
// handlers, where no test is at hand: a failure there is a bug of the
// test, and panics.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                           {}
func (panicTB) Fatalf(format string, args ...any) { panic(format) }
func (panicTB) Fatal(args ...any)                 { panic(args) }
func (panicTB) Errorf(format string, args ...any) { panic(format) }
func (panicTB) FailNow()                          { panic("FailNow") }
func (panicTB) Cleanup(func())                    {}
