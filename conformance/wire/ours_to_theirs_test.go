package wire

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// theirServer is a Workload API server built only from go-spiffe's
// generated code. It answers every RPC with a fully populated message of
// go-spiffe's types and records the requests it receives.
type theirServer struct {
	workload.UnimplementedSpiffeWorkloadAPIServer

	x509       *workload.X509SVIDResponse
	x509Bundle *workload.X509BundlesResponse
	jwt        *workload.JWTSVIDResponse
	jwtBundle  *workload.JWTBundlesResponse
	validate   *workload.ValidateJWTSVIDResponse
	wit        *workload.WITSVIDResponse
	witBundle  *workload.WITBundlesResponse

	mu       sync.Mutex
	requests []any // every request message, in arrival order
}

// admit checks the security header our client must send (WE rule 6) and
// records req.
func (s *theirServer) admit(ctx context.Context, req any) error {
	md, _ := metadata.FromIncomingContext(ctx)
	if !slices.Equal(md.Get("workload.spiffe.io"), []string{"true"}) {
		return status.Error(codes.InvalidArgument, "security header missing from request")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	return nil
}

func (s *theirServer) last() any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[len(s.requests)-1]
}

// sendOnce sends msg and holds the stream open until the client leaves, as
// a real server does.
func sendOnce[T any](s *theirServer, req any, stream grpc.ServerStreamingServer[T], msg *T) error {
	if err := s.admit(stream.Context(), req); err != nil {
		return err
	}
	if err := stream.Send(msg); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (s *theirServer) FetchX509SVID(req *workload.X509SVIDRequest, stream workload.SpiffeWorkloadAPI_FetchX509SVIDServer) error {
	return sendOnce(s, req, stream, s.x509)
}

func (s *theirServer) FetchX509Bundles(req *workload.X509BundlesRequest, stream workload.SpiffeWorkloadAPI_FetchX509BundlesServer) error {
	return sendOnce(s, req, stream, s.x509Bundle)
}

func (s *theirServer) FetchJWTBundles(req *workload.JWTBundlesRequest, stream workload.SpiffeWorkloadAPI_FetchJWTBundlesServer) error {
	return sendOnce(s, req, stream, s.jwtBundle)
}

func (s *theirServer) FetchWITSVID(req *workload.WITSVIDRequest, stream workload.SpiffeWorkloadAPI_FetchWITSVIDServer) error {
	return sendOnce(s, req, stream, s.wit)
}

func (s *theirServer) FetchWITBundles(req *workload.WITBundlesRequest, stream workload.SpiffeWorkloadAPI_FetchWITBundlesServer) error {
	return sendOnce(s, req, stream, s.witBundle)
}

func (s *theirServer) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	if err := s.admit(ctx, req); err != nil {
		return nil, err
	}
	return s.jwt, nil
}

func (s *theirServer) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	if err := s.admit(ctx, req); err != nil {
		return nil, err
	}
	return s.validate, nil
}

// serveTheirs runs srv with go-spiffe's generated registration on a fresh
// unix socket until the test ends and returns its address.
func serveTheirs(t *testing.T, srv workload.SpiffeWorkloadAPIServer) string {
	t.Helper()
	path := workloadtest.SocketPath(t)
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	gs := grpc.NewServer()
	workload.RegisterSpiffeWorkloadAPIServer(gs, srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return "unix://" + path
}

// theirFixture is the material theirServer serves.
type theirFixture struct {
	f          *workloadtest.Fixture
	web, db    *x509svid.SVID
	jwtWeb     string
	jwtDB      string
	witA, witB endpoint.WITSVID
	srv        *theirServer
	client     *workloadapi.Client
}

func newTheirFixture(t *testing.T) *theirFixture {
	t.Helper()
	f := workloadtest.New(t)
	x := &theirFixture{f: f,
		web:  f.SVID(t, workloadtest.WebID, "internal"),
		db:   f.SVID(t, workloadtest.DBID, "external"),
		witA: f.WITSVID(t, workloadtest.WebID, "wit-internal"),
		witB: f.WITSVID(t, workloadtest.DBID, "wit-external"),
	}
	var err error
	x.jwtWeb, err = f.SignJWT(t.Context(), workloadtest.WebID, []string{"db", "cache"})
	require.NoError(t, err)
	x.jwtDB, err = f.SignJWT(t.Context(), workloadtest.DBID, []string{"db", "cache"})
	require.NoError(t, err)

	ownRoot, fedRoot := f.X509.Certificate().Raw, f.FedX509.Certificate().Raw
	ownJWT, err := f.Own.JWTBundle().Marshal()
	require.NoError(t, err)
	fedJWT, err := f.Federated.JWTBundle().Marshal()
	require.NoError(t, err)
	ownWIT, err := f.Own.WITBundle().Marshal()
	require.NoError(t, err)
	claims, err := structpb.NewStruct(map[string]any{"sub": workloadtest.WebID.String(), "aud": []any{"db"}, "exp": 1e10})
	require.NoError(t, err)

	x.srv = &theirServer{
		x509: &workload.X509SVIDResponse{
			Svids: []*workload.X509SVID{
				{SpiffeId: x.web.ID.String(), X509Svid: concatDER(x.web.Certificates), X509SvidKey: pkcs8(t, x.web), Bundle: ownRoot, Hint: x.web.Hint},
				{SpiffeId: x.db.ID.String(), X509Svid: concatDER(x.db.Certificates), X509SvidKey: pkcs8(t, x.db), Bundle: ownRoot, Hint: x.db.Hint},
			},
			FederatedBundles: map[string][]byte{"spiffe://federated.test": fedRoot},
		},
		x509Bundle: &workload.X509BundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": ownRoot, "spiffe://federated.test": fedRoot}},
		jwt: &workload.JWTSVIDResponse{Svids: []*workload.JWTSVID{
			{SpiffeId: workloadtest.WebID.String(), Svid: x.jwtWeb, Hint: "internal"},
			{SpiffeId: workloadtest.DBID.String(), Svid: x.jwtDB, Hint: "external"},
		}},
		jwtBundle: &workload.JWTBundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": ownJWT, "spiffe://federated.test": fedJWT}},
		validate:  &workload.ValidateJWTSVIDResponse{SpiffeId: workloadtest.WebID.String(), Claims: claims},
		wit: &workload.WITSVIDResponse{Svids: []*workload.WITSVID{
			{SpiffeId: x.witA.ID.String(), WitSvid: x.witA.Token, WitSvidKey: x.witA.Key, Hint: x.witA.Hint},
			{SpiffeId: x.witB.ID.String(), WitSvid: x.witB.Token, WitSvidKey: x.witB.Key, Hint: x.witB.Hint},
		}},
		witBundle: &workload.WITBundlesResponse{Bundles: map[string]string{"spiffe://example.org": string(ownWIT)}},
	}
	addr := serveTheirs(t, x.srv)
	x.client, err = workloadapi.New(t.Context(), workloadapi.WithAddr(addr))
	require.NoError(t, err)
	t.Cleanup(func() { x.client.Close() })
	return x
}

func requireSVIDEqual(t *testing.T, want, got *x509svid.SVID) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Hint, got.Hint)
	require.Len(t, got.Certificates, len(want.Certificates))
	for i := range want.Certificates {
		assert.True(t, want.Certificates[i].Equal(got.Certificates[i]), "certificate %d", i)
	}
	assert.True(t, want.PrivateKey.(*ecdsa.PrivateKey).Equal(got.PrivateKey), "private key")
}

// TestOurClientTheirServerX509 decodes go-spiffe's X.509 messages with our
// client.
func TestOurClientTheirServerX509(t *testing.T) {
	x := newTheirFixture(t)
	ctx := withHeader(t)

	x509ctx, err := x.client.FetchX509Context(ctx)
	require.NoError(t, err)
	require.Len(t, x509ctx.SVIDs, 2)
	requireSVIDEqual(t, x.web, x509ctx.SVIDs[0])
	requireSVIDEqual(t, x.db, x509ctx.SVIDs[1])
	assert.Equal(t, 2, x509ctx.Bundles.Len(), "own bundle from svids[].bundle, federated from federated_bundles")
	own, err := x509ctx.Bundles.GetX509BundleForTrustDomain(workloadtest.TD)
	require.NoError(t, err)
	assert.True(t, own.HasX509Authority(x.f.X509.Certificate()))
	fed, err := x509ctx.Bundles.GetX509BundleForTrustDomain(workloadtest.FedTD)
	require.NoError(t, err)
	assert.True(t, fed.HasX509Authority(x.f.FedX509.Certificate()))
	assert.IsType(t, &workload.X509SVIDRequest{}, x.srv.last())

	bundles, err := x.client.FetchX509Bundles(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, bundles.Len())
	fed, err = bundles.GetX509BundleForTrustDomain(workloadtest.FedTD)
	require.NoError(t, err)
	assert.True(t, fed.HasX509Authority(x.f.FedX509.Certificate()))
	assert.IsType(t, &workload.X509BundlesRequest{}, x.srv.last())
}

// TestOurClientTheirServerJWT checks the JWT request fields as go-spiffe's
// types decode them, and our client's reading of the responses.
func TestOurClientTheirServerJWT(t *testing.T) {
	x := newTheirFixture(t)
	ctx := withHeader(t)

	svids, err := x.client.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "db", ExtraAudiences: []string{"cache"}, Subject: workloadtest.DBID})
	require.NoError(t, err)
	req := x.srv.last().(*workload.JWTSVIDRequest)
	assert.Equal(t, []string{"db", "cache"}, req.Audience)
	assert.Equal(t, workloadtest.DBID.String(), req.SpiffeId)
	require.Len(t, svids, 2)
	assert.Equal(t, workloadtest.WebID, svids[0].ID)
	assert.Equal(t, "internal", svids[0].Hint)
	assert.Equal(t, x.jwtWeb, svids[0].Marshal())
	assert.Equal(t, workloadtest.DBID, svids[1].ID)
	assert.Equal(t, "external", svids[1].Hint)
	assert.Equal(t, x.jwtDB, svids[1].Marshal())

	bundles, err := x.client.FetchJWTBundles(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, bundles.Len())
	own, err := bundles.GetJWTBundleForTrustDomain(workloadtest.TD)
	require.NoError(t, err)
	key, ok := own.FindJWTAuthority(x.f.JWT.KeyID())
	require.True(t, ok)
	assert.True(t, key.(*ecdsa.PublicKey).Equal(x.f.JWT.PublicKey()))
	fed, err := bundles.GetJWTBundleForTrustDomain(workloadtest.FedTD)
	require.NoError(t, err)
	_, ok = fed.FindJWTAuthority(x.f.FedJWT.KeyID())
	assert.True(t, ok)

	validated, err := x.client.ValidateJWTSVID(ctx, x.jwtWeb, "db")
	require.NoError(t, err)
	vreq := x.srv.last().(*workload.ValidateJWTSVIDRequest)
	assert.Equal(t, "db", vreq.Audience)
	assert.Equal(t, x.jwtWeb, vreq.Svid)
	assert.Equal(t, workloadtest.WebID, validated.ID)
}

// TestOurClientTheirServerWIT checks the WIT request field and our
// client's reading of the string-typed key and bundle fields.
func TestOurClientTheirServerWIT(t *testing.T) {
	x := newTheirFixture(t)
	ctx := withHeader(t)

	svids, err := x.client.FetchWITSVIDs(ctx, workloadtest.DBID.String())
	require.NoError(t, err)
	assert.Equal(t, workloadtest.DBID.String(), x.srv.last().(*workload.WITSVIDRequest).SpiffeId)
	require.Len(t, svids, 2, "the server chose to answer with both")
	for i, want := range []endpoint.WITSVID{x.witA, x.witB} {
		assert.Equal(t, want.ID, svids[i].ID)
		assert.Equal(t, want.Token, svids[i].Marshal())
		assert.Equal(t, want.Hint, svids[i].Hint)
		var jwk jose.JSONWebKey
		require.NoError(t, json.Unmarshal([]byte(want.Key), &jwk))
		assert.True(t, jwk.Key.(*ecdsa.PrivateKey).Equal(svids[i].PrivateKey), "WIT-SVID %d private key", i)
	}

	bundles, err := x.client.FetchWITBundles(ctx)
	require.NoError(t, err)
	assert.Equal(t, 1, bundles.Len())
	own, err := bundles.GetWITBundleForTrustDomain(workloadtest.TD)
	require.NoError(t, err)
	_, ok := own.FindWITAuthority(x.f.WIT.KeyID())
	assert.True(t, ok)
}

// TestOurClientSendsHeader: a go-spiffe-built server sees the security
// header on every call of our client, and a request without it is refused
// by the same server, so the check above is real.
func TestOurClientSendsHeader(t *testing.T) {
	x := newTheirFixture(t)
	ctx := withHeader(t)
	_, err := x.client.FetchX509SVID(ctx)
	require.NoError(t, err)
	_, err = x.client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
	require.NoError(t, err)

	conn := theirStub(t, serveTheirs(t, x.srv))
	_, err = conn.FetchJWTSVID(t.Context(), &workload.JWTSVIDRequest{Audience: []string{"db"}})
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}
