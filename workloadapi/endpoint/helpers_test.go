package endpoint_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	fedTD = spiffeid.RequireTrustDomainFromString("federated.test")
	webID = spiffeid.RequireFromPath(td, "/web")
	dbID  = spiffeid.RequireFromPath(td, "/db")
)

// fixture holds real authorities for the own and one federated trust
// domain.
type fixture struct {
	root, fedRoot  *testca.CA
	jwt, fedJWT    *ca.JWTAuthority
	witKey         *ecdsa.PrivateKey
	witKeyID       string
	own, federated *spiffebundle.Bundle
	handler        *endpoint.MemoryHandler
	uid            string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{root: testca.New(t, td), fedRoot: testca.New(t, fedTD), witKey: testca.NewECKey(t), witKeyID: "wit-1"}
	var err error
	f.jwt, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(t), TrustDomain: td})
	require.NoError(t, err)
	f.fedJWT, err = ca.NewJWTAuthority(ca.JWTAuthorityConfig{Signer: testca.NewECKey(t), TrustDomain: fedTD})
	require.NoError(t, err)
	f.own = spiffebundle.FromX509Authorities(td, []*x509.Certificate{f.root.Cert()})
	require.NoError(t, f.own.AddJWTAuthority(f.jwt.KeyID(), f.jwt.PublicKey()))
	require.NoError(t, f.own.AddWITAuthority(f.witKeyID, f.witKey.Public()))
	f.federated = spiffebundle.FromX509Authorities(fedTD, []*x509.Certificate{f.fedRoot.Cert()})
	require.NoError(t, f.federated.AddJWTAuthority(f.fedJWT.KeyID(), f.fedJWT.PublicKey()))
	f.handler = endpoint.NewMemoryHandler(endpoint.MemoryConfig{SignJWT: f.signJWT})
	f.uid = strconv.Itoa(os.Getuid())
	return f
}

func (f *fixture) signJWT(ctx context.Context, id spiffeid.ID, audience []string) (string, error) {
	a := f.jwt
	if id.MemberOf(fedTD) {
		a = f.fedJWT
	}
	return a.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: id, Audience: audience})
}

// svid mints a fresh X509-SVID for id.
func (f *fixture) svid(t testing.TB, id spiffeid.ID, hint string) *x509svid.SVID {
	t.Helper()
	chain, key := f.root.NewLeaf(t, id)
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key, Hint: hint}
}

// snapshot is a view with the given SVIDs and both bundles.
func (f *fixture) snapshot(svids ...*x509svid.SVID) *endpoint.Snapshot {
	return &endpoint.Snapshot{TrustDomain: td, X509SVIDs: svids, Bundles: []*spiffebundle.Bundle{f.own, f.federated}}
}

// serve runs a server for cfg on a unix socket in a fresh directory until the
// test ends, and returns a client connected to it and the socket path.
func serve(t testing.TB, cfg endpoint.Config) (workloadpb.WorkloadAPIClient, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	lis, err := endpoint.ListenUnix(path, 0o770)
	require.NoError(t, err)
	srv, err := endpoint.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return dial(t, "unix://"+path), path
}

// serveWeb returns a fresh fixture in which this process's UID holds an
// X509-SVID for webID, and a client of a server for its handler.
func serveWeb(t testing.TB) (*fixture, workloadpb.WorkloadAPIClient) {
	t.Helper()
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	client, _ := serve(t, endpoint.Config{Handler: f.handler})
	return f, client
}

func dial(t testing.TB, target string) workloadpb.WorkloadAPIClient {
	t.Helper()
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return workloadpb.NewWorkloadAPIClient(conn)
}

// withHeader adds the security header (WE rule 6).
func withHeader(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, workloadpb.HeaderKey, workloadpb.HeaderValue)
}

// recvFirst opens a server stream with open (a WorkloadAPIClient method),
// requires that to succeed, and returns the stream's first message or the
// error of the first Recv, which is where the server's status arrives.
func recvFirst[Req, Resp any](t testing.TB, ctx context.Context, open func(context.Context, *Req, ...grpc.CallOption) (grpc.ServerStreamingClient[Resp], error), req *Req) (*Resp, error) {
	t.Helper()
	s, err := open(ctx, req)
	require.NoError(t, err)
	return s.Recv()
}

// requireFirstX509SVID requires the first FetchX509SVID message to succeed
// and to carry want as its first (default) identity.
func requireFirstX509SVID(t testing.TB, ctx context.Context, client workloadpb.WorkloadAPIClient, want spiffeid.ID) {
	t.Helper()
	resp, err := recvFirst(t, ctx, client.FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)
	require.NotEmpty(t, resp.Svids)
	require.Equal(t, want.String(), resp.Svids[0].SpiffeId)
}

func requireCode(t testing.TB, want codes.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, status.Code(err), "error: %v", err)
}
