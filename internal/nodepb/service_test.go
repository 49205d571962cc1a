package nodepb

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// echoServer answers each method with a message derived from the request.
type echoServer struct{}

func (echoServer) Attest(s grpc.BidiStreamingServer[AttestRequest, AttestResponse]) error {
	first, err := s.Recv()
	if err != nil {
		return err
	}
	if err := s.Send(&AttestResponse{Challenge: first.Payload}); err != nil {
		return err
	}
	answer, err := s.Recv()
	if err != nil {
		return err
	}
	return s.Send(&AttestResponse{Result: &AgentSVID{SpiffeId: string(answer.ChallengeResponse)}})
}

func (echoServer) RenewAgent(_ context.Context, r *RenewAgentRequest) (*RenewAgentResponse, error) {
	return &RenewAgentResponse{Svid: &AgentSVID{Bundle: r.Csr}}, nil
}

func (echoServer) Sync(r *SyncRequest, s grpc.ServerStreamingServer[SyncResponse]) error {
	for _, k := range r.Known {
		if err := s.Send(&SyncResponse{DeletedIds: []string{k.Id}}); err != nil {
			return err
		}
	}
	return nil
}

func (echoServer) SignX509SVIDs(_ context.Context, r *SignX509SVIDsRequest) (*SignX509SVIDsResponse, error) {
	out := &SignX509SVIDsResponse{}
	for _, q := range r.Requests {
		out.Results = append(out.Results, &X509SVIDResult{Error: q.EntryId})
	}
	return out, nil
}

func (echoServer) SignJWTSVID(_ context.Context, r *SignJWTSVIDRequest) (*SignJWTSVIDResponse, error) {
	return &SignJWTSVIDResponse{Token: r.EntryId + ":" + r.Audience[0]}, nil
}

func (echoServer) SignWITSVID(_ context.Context, r *SignWITSVIDRequest) (*SignWITSVIDResponse, error) {
	return &SignWITSVIDResponse{Token: r.EntryId + ":" + string(r.PublicKey) + ":" + r.KeyAlgorithm}, nil
}

func (echoServer) MintX509CA(_ context.Context, r *MintX509CARequest) (*MintX509CAResponse, error) {
	return &MintX509CAResponse{CertChain: [][]byte{r.Csr}, Roots: [][]byte{{byte(r.TtlSeconds)}}}, nil
}

func (echoServer) PublishJWTKeys(_ context.Context, r *PublishJWTKeysRequest) (*PublishJWTKeysResponse, error) {
	return &PublishJWTKeysResponse{Bundle: []byte(r.Keys[0].KeyId)}, nil
}

// TestEveryMethodOverGRPC calls every method through a real gRPC server on
// a unix socket, with and without a unary interceptor, and checks the
// method paths on the wire.
func TestEveryMethodOverGRPC(t *testing.T) {
	for _, intercept := range []bool{false, true} {
		dir, err := os.MkdirTemp("", "nodepb")
		require.NoError(t, err)
		defer os.RemoveAll(dir)
		lis, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
		require.NoError(t, err)
		var mu sync.Mutex
		var paths []string
		record := func(p string) { mu.Lock(); paths = append(paths, p); mu.Unlock() }
		opts := []grpc.ServerOption{grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(info.FullMethod)
			return h(srv, ss)
		})}
		if intercept {
			opts = append(opts, grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
				record(info.FullMethod)
				return h(ctx, req)
			}))
		}
		gs := grpc.NewServer(opts...)
		RegisterNodeServer(gs, echoServer{})
		go gs.Serve(lis)
		cc, err := grpc.NewClient("unix://"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		c := NewNodeClient(cc)
		ctx := t.Context()

		stream, err := c.Attest(ctx)
		require.NoError(t, err)
		require.NoError(t, stream.Send(&AttestRequest{AttestorType: "t", Payload: []byte("nonce")}))
		ch, err := stream.Recv()
		require.NoError(t, err)
		assert.Equal(t, []byte("nonce"), ch.Challenge)
		require.NoError(t, stream.Send(&AttestRequest{ChallengeResponse: []byte("spiffe://example.org/agent")}))
		res, err := stream.Recv()
		require.NoError(t, err)
		assert.Equal(t, "spiffe://example.org/agent", res.GetResult().GetSpiffeId())

		renew, err := c.RenewAgent(ctx, &RenewAgentRequest{Csr: []byte{1}})
		require.NoError(t, err)
		assert.Equal(t, []byte{1}, renew.GetSvid().GetBundle())

		sync, err := c.Sync(ctx, &SyncRequest{Known: []*EntryRevision{{Id: "a"}, {Id: "b"}}})
		require.NoError(t, err)
		var deleted []string
		for {
			u, err := sync.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			deleted = append(deleted, u.DeletedIds...)
		}
		assert.Equal(t, []string{"a", "b"}, deleted)

		signed, err := c.SignX509SVIDs(ctx, &SignX509SVIDsRequest{Requests: []*X509SVIDRequest{{EntryId: "e1"}}})
		require.NoError(t, err)
		assert.Equal(t, "e1", signed.Results[0].Error)
		jwt, err := c.SignJWTSVID(ctx, &SignJWTSVIDRequest{EntryId: "e1", Audience: []string{"db"}})
		require.NoError(t, err)
		assert.Equal(t, "e1:db", jwt.Token)
		wit, err := c.SignWITSVID(ctx, &SignWITSVIDRequest{EntryId: "e1", PublicKey: []byte("k"), KeyAlgorithm: "ES256"})
		require.NoError(t, err)
		assert.Equal(t, "e1:k:ES256", wit.Token)
		minted, err := c.MintX509CA(ctx, &MintX509CARequest{Csr: []byte{2}, TtlSeconds: 3})
		require.NoError(t, err)
		assert.Equal(t, [][]byte{{2}}, minted.CertChain)
		assert.Equal(t, [][]byte{{3}}, minted.Roots)
		published, err := c.PublishJWTKeys(ctx, &PublishJWTKeysRequest{Keys: []*JWTKey{{KeyId: "k1"}}})
		require.NoError(t, err)
		assert.Equal(t, []byte("k1"), published.Bundle)

		want := []string{AttestMethod, SyncMethod}
		if intercept {
			want = []string{AttestMethod, RenewAgentMethod, SyncMethod, SignX509SVIDsMethod, SignJWTSVIDMethod, SignWITSVIDMethod, MintX509CAMethod, PublishJWTKeysMethod}
		}
		mu.Lock()
		assert.Equal(t, want, paths)
		mu.Unlock()
		cc.Close()
		gs.Stop()
	}
}

// TestClientErrors: a call on a closed connection fails cleanly.
func TestClientErrors(t *testing.T) {
	cc, err := grpc.NewClient("unix:///nonexistent/socket", grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	require.NoError(t, cc.Close())
	c := NewNodeClient(cc)
	ctx := t.Context()
	_, err = c.Attest(ctx)
	assert.Error(t, err)
	_, err = c.Sync(ctx, &SyncRequest{})
	assert.Error(t, err)
	_, err = c.RenewAgent(ctx, &RenewAgentRequest{})
	assert.Error(t, err)
	_, err = c.SignX509SVIDs(ctx, &SignX509SVIDsRequest{})
	assert.Error(t, err)
	_, err = c.SignJWTSVID(ctx, &SignJWTSVIDRequest{})
	assert.Error(t, err)
	_, err = c.SignWITSVID(ctx, &SignWITSVIDRequest{})
	assert.Error(t, err)
}
