package grpccredentials_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/spiffegrpc/grpccredentials"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Trust domains of the test CAs.
var (
	exampleOrg = spiffeid.RequireTrustDomainFromString("example.org")
	webExample = spiffeid.RequireTrustDomainFromString("web.example")
)

// healthServer answers Check and records the caller's SPIFFE ID.
type healthServer struct {
	grpc_health_v1.UnimplementedHealthServer
	peers chan peerID
}

type peerID struct {
	id spiffeid.ID
	ok bool
}

func (h *healthServer) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	id, ok := grpccredentials.PeerIDFromContext(ctx)
	h.peers <- peerID{id, ok}
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// startServer serves the health service with creds on a unix socket and
// returns its address and the channel of caller IDs.
func startServer(t *testing.T, creds credentials.TransportCredentials) (string, <-chan peerID) {
	t.Helper()
	dir, err := os.MkdirTemp("", "gc")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := grpc.NewServer(grpc.Creds(creds))
	h := &healthServer{peers: make(chan peerID, 16)}
	grpc_health_v1.RegisterHealthServer(srv, h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return "unix://" + path, h.peers
}

// check calls Check over a new client connection and returns the server's
// peer as the client saw it.
func check(t *testing.T, target string, creds credentials.TransportCredentials, opts ...grpc.DialOption) (*peer.Peer, error) {
	t.Helper()
	conn, err := grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts...)...)
	require.NoError(t, err)
	defer conn.Close()
	var p peer.Peer
	ctx, cancel := context.WithTimeout(t.Context(), 10e9)
	defer cancel()
	_, err = grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.Peer(&p))
	return &p, err
}
