package workloadpb

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// echoServer answers each method with a message derived from the request, and
// records the method paths it saw through an interceptor.
type echoServer struct {
	UnimplementedWorkloadAPIServer
}

func (echoServer) FetchX509SVID(_ *X509SVIDRequest, s grpc.ServerStreamingServer[X509SVIDResponse]) error {
	for _, id := range []string{"spiffe://example.org/a", "spiffe://example.org/b"} {
		if err := s.Send(&X509SVIDResponse{Svids: []*X509SVID{{SpiffeId: id}}}); err != nil {
			return err
		}
	}
	return nil
}

func (echoServer) FetchX509Bundles(_ *X509BundlesRequest, s grpc.ServerStreamingServer[X509BundlesResponse]) error {
	return s.Send(&X509BundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": {1}}})
}

func (echoServer) FetchJWTSVID(_ context.Context, r *JWTSVIDRequest) (*JWTSVIDResponse, error) {
	return &JWTSVIDResponse{Svids: []*JWTSVID{{SpiffeId: r.SpiffeId, Svid: r.Audience[0]}}}, nil
}

func (echoServer) FetchJWTBundles(_ *JWTBundlesRequest, s grpc.ServerStreamingServer[JWTBundlesResponse]) error {
	return s.Send(&JWTBundlesResponse{Bundles: map[string][]byte{"spiffe://example.org": []byte(`{"keys":[]}`)}})
}

func (echoServer) ValidateJWTSVID(_ context.Context, r *ValidateJWTSVIDRequest) (*ValidateJWTSVIDResponse, error) {
	claims, err := structpb.NewStruct(map[string]any{"aud": r.Audience})
	if err != nil {
		return nil, err
	}
	return &ValidateJWTSVIDResponse{SpiffeId: r.Svid, Claims: claims}, nil
}

func (echoServer) FetchWITBundles(_ *WITBundlesRequest, s grpc.ServerStreamingServer[WITBundlesResponse]) error {
	return s.Send(&WITBundlesResponse{Bundles: map[string]string{"spiffe://example.org": `{"keys":[]}`}})
}

func startServer(t *testing.T) (WorkloadAPIClient, *[]string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wlpb")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", sock)
	require.NoError(t, err)

	var methods []string
	record := func(method string) { methods = append(methods, method) }
	srv := grpc.NewServer(
		grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(info.FullMethod)
			return h(ctx, req)
		}),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(info.FullMethod)
			return h(srv, ss)
		}),
	)
	RegisterWorkloadAPIServer(srv, echoServer{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	cc, err := grpc.NewClient("unix:"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return NewWorkloadAPIClient(cc), &methods
}

func TestServiceRoundTrip(t *testing.T) {
	client, methods := startServer(t)
	ctx := t.Context()

	x509, err := client.FetchX509SVID(ctx, &X509SVIDRequest{})
	require.NoError(t, err)
	for _, want := range []string{"spiffe://example.org/a", "spiffe://example.org/b"} {
		resp, err := x509.Recv()
		require.NoError(t, err)
		assert.Equal(t, want, resp.Svids[0].SpiffeId)
	}

	bundles, err := client.FetchX509Bundles(ctx, &X509BundlesRequest{})
	require.NoError(t, err)
	b, err := bundles.Recv()
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, b.Bundles["spiffe://example.org"])

	jwt, err := client.FetchJWTSVID(ctx, &JWTSVIDRequest{Audience: []string{"aud"}, SpiffeId: "spiffe://example.org/a"})
	require.NoError(t, err)
	assert.Equal(t, "aud", jwt.Svids[0].Svid)
	assert.Equal(t, "spiffe://example.org/a", jwt.Svids[0].SpiffeId)

	jwtBundles, err := client.FetchJWTBundles(ctx, &JWTBundlesRequest{})
	require.NoError(t, err)
	jb, err := jwtBundles.Recv()
	require.NoError(t, err)
	assert.Equal(t, `{"keys":[]}`, string(jb.Bundles["spiffe://example.org"]))

	valid, err := client.ValidateJWTSVID(ctx, &ValidateJWTSVIDRequest{Audience: "aud", Svid: "token"})
	require.NoError(t, err)
	assert.Equal(t, "token", valid.SpiffeId)
	assert.Equal(t, "aud", valid.Claims.Fields["aud"].GetStringValue())

	witBundles, err := client.FetchWITBundles(ctx, &WITBundlesRequest{})
	require.NoError(t, err)
	wb, err := witBundles.Recv()
	require.NoError(t, err)
	assert.Equal(t, `{"keys":[]}`, wb.Bundles["spiffe://example.org"])

	// WIT rule 17: a method the server does not offer answers Unimplemented.
	wit, err := client.FetchWITSVID(ctx, &WITSVIDRequest{})
	require.NoError(t, err)
	_, err = wit.Recv()
	assert.Equal(t, codes.Unimplemented, status.Code(err))

	// The method paths on the wire are those of the standard.
	assert.Equal(t, []string{
		"/SpiffeWorkloadAPI/FetchX509SVID",
		"/SpiffeWorkloadAPI/FetchX509Bundles",
		"/SpiffeWorkloadAPI/FetchJWTSVID",
		"/SpiffeWorkloadAPI/FetchJWTBundles",
		"/SpiffeWorkloadAPI/ValidateJWTSVID",
		"/SpiffeWorkloadAPI/FetchWITBundles",
		"/SpiffeWorkloadAPI/FetchWITSVID",
	}, *methods)
}

func TestUnimplemented(t *testing.T) {
	var u UnimplementedWorkloadAPIServer
	ctx := t.Context()
	errs := []error{
		u.FetchX509SVID(nil, nil),
		u.FetchX509Bundles(nil, nil),
		u.FetchJWTBundles(nil, nil),
		u.FetchWITSVID(nil, nil),
		u.FetchWITBundles(nil, nil),
	}
	_, err := u.FetchJWTSVID(ctx, nil)
	errs = append(errs, err)
	_, err = u.ValidateJWTSVID(ctx, nil)
	errs = append(errs, err)
	for _, err := range errs {
		assert.Equal(t, codes.Unimplemented, status.Code(err))
	}
}
