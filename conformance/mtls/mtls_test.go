// Package mtls checks that spiffekit's spiffetls and grpccredentials
// interoperate with go-spiffe v2.9.0's over real TCP: one side uses one
// library, the other side the other, both authorize the peer by SPIFFE ID,
// and both take their X509-SVIDs from spiffekit's Workload API server
// through their own library's X509Source.
package mtls

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	gsspiffegrpc "github.com/spiffe/go-spiffe/v2/spiffegrpc/grpccredentials"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gsspiffetls "github.com/spiffe/go-spiffe/v2/spiffetls"
	gstlsconfig "github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/spiffegrpc/grpccredentials"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

const timeout = 15 * time.Second

var (
	// The client runs as web (its source's default, the first SVID); the
	// server as db (picked explicitly). Both come from one Workload API
	// view, since both sides run in this process.
	gsWeb = gsid.RequireFromString(workloadtest.WebID.String())
	gsDB  = gsid.RequireFromString(workloadtest.DBID.String())
)

// sources serves web and db through our endpoint.Server and opens one
// X509Source per library and role on it.
type sources struct {
	oursWeb, oursDB *workloadapi.X509Source
	gsWeb, gsDB     *gsworkloadapi.X509Source
}

func newSources(t *testing.T) *sources {
	t.Helper()
	f := workloadtest.New(t)
	require.NoError(t, f.Handler.Set(f.UID, f.Snapshot(f.SVID(t, workloadtest.WebID, "web"), f.SVID(t, workloadtest.DBID, "db"))))
	srv := workloadtest.Serve(t, endpoint.Config{Handler: f.Handler})
	ctx := testContext(t)
	pickDB := func(svids []*x509svid.SVID) *x509svid.SVID { return svids[1] }
	gsPickDB := func(svids []*gsx509svid.SVID) *gsx509svid.SVID { return svids[1] }

	s := &sources{}
	var err error
	s.oursWeb, err = workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(srv.Addr)))
	require.NoError(t, err)
	t.Cleanup(func() { s.oursWeb.Close() })
	s.oursDB, err = workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(workloadapi.WithAddr(srv.Addr)), workloadapi.WithDefaultX509SVIDPicker(pickDB))
	require.NoError(t, err)
	t.Cleanup(func() { s.oursDB.Close() })
	s.gsWeb, err = gsworkloadapi.NewX509Source(ctx, gsworkloadapi.WithClientOptions(gsworkloadapi.WithAddr(srv.Addr)))
	require.NoError(t, err)
	t.Cleanup(func() { s.gsWeb.Close() })
	s.gsDB, err = gsworkloadapi.NewX509Source(ctx, gsworkloadapi.WithClientOptions(gsworkloadapi.WithAddr(srv.Addr)), gsworkloadapi.WithDefaultX509SVIDPicker(gsPickDB))
	require.NoError(t, err)
	t.Cleanup(func() { s.gsDB.Close() })
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// accepted is what the server side of one connection saw.
type accepted struct {
	peer string
	err  error
}

// echoOnce accepts one connection on lis, reads the client's peer ID with
// peerID, echoes one line and reports.
func echoOnce(lis net.Listener, peerID func(net.Conn) (string, error)) <-chan accepted {
	out := make(chan accepted, 1)
	go func() {
		conn, err := lis.Accept()
		if err != nil {
			out <- accepted{err: err}
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(timeout))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err != nil { // completes the handshake
			out <- accepted{err: err}
			return
		}
		id, err := peerID(conn)
		if err == nil {
			_, err = conn.Write(buf)
		}
		out <- accepted{peer: id, err: err}
	}()
	return out
}

// ping writes and reads back one line on a dialled connection.
func ping(t *testing.T, conn net.Conn) {
	t.Helper()
	require.NoError(t, conn.SetDeadline(time.Now().Add(timeout)))
	_, err := conn.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(conn, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf))
}

// TestGoSPIFFEDialsOurListener: a go-spiffe spiffetls client dials a
// spiffekit spiffetls listener; each authorizes the other by SPIFFE ID.
func TestGoSPIFFEDialsOurListener(t *testing.T) {
	s := newSources(t)
	ctx := testContext(t)
	lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(workloadtest.WebID), s.oursDB))
	require.NoError(t, err)
	defer lis.Close()
	done := echoOnce(lis, func(c net.Conn) (string, error) {
		id, err := spiffetls.PeerIDFromConn(c)
		return id.String(), err
	})

	conn, err := gsspiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), gsspiffetls.MTLSClientWithSource(gstlsconfig.AuthorizeID(gsDB), s.gsWeb))
	require.NoError(t, err)
	defer conn.Close()
	ping(t, conn)
	serverID, err := gsspiffetls.PeerIDFromConn(conn)
	require.NoError(t, err)
	assert.Equal(t, gsDB, serverID)

	got, err := workloadtest.Recv(done, timeout)
	require.NoError(t, err)
	require.NoError(t, got.err)
	assert.Equal(t, workloadtest.WebID.String(), got.peer)
}

// TestOursDialsGoSPIFFEListener is the reverse direction.
func TestOursDialsGoSPIFFEListener(t *testing.T) {
	s := newSources(t)
	ctx := testContext(t)
	lis, err := gsspiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", gsspiffetls.MTLSServerWithSource(gstlsconfig.AuthorizeID(gsWeb), s.gsDB))
	require.NoError(t, err)
	defer lis.Close()
	done := echoOnce(lis, func(c net.Conn) (string, error) {
		id, err := gsspiffetls.PeerIDFromConn(c)
		return id.String(), err
	})

	conn, err := spiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(workloadtest.DBID), s.oursWeb))
	require.NoError(t, err)
	defer conn.Close()
	ping(t, conn)
	serverID, err := spiffetls.PeerIDFromConn(conn)
	require.NoError(t, err)
	assert.Equal(t, workloadtest.DBID, serverID)

	got, err := workloadtest.Recv(done, timeout)
	require.NoError(t, err)
	require.NoError(t, got.err)
	assert.Equal(t, workloadtest.WebID.String(), got.peer)
}

// TestMixedAuthorizationRefused: when either side's authorizer rejects the
// peer's ID, the handshake fails, whichever library is on which side.
func TestMixedAuthorizationRefused(t *testing.T) {
	s := newSources(t)
	ctx := testContext(t)
	other := spiffeid.RequireFromPath(workloadtest.TD, "/other")
	gsOther := gsid.RequireFromString(other.String())

	t.Run("our server refuses go-spiffe client", func(t *testing.T) {
		lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(other), s.oursDB))
		require.NoError(t, err)
		defer lis.Close()
		done := echoOnce(lis, func(net.Conn) (string, error) { return "", nil })
		conn, err := gsspiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), gsspiffetls.MTLSClientWithSource(gstlsconfig.AuthorizeID(gsDB), s.gsWeb))
		if err == nil {
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(timeout))
			_, err = conn.Read(make([]byte, 1)) // TLS 1.3: the client learns of the refusal here
		}
		assert.Error(t, err)
		got, recvErr := workloadtest.Recv(done, timeout)
		require.NoError(t, recvErr)
		assert.ErrorContains(t, got.err, "not authorized")
	})
	t.Run("go-spiffe client refuses our server", func(t *testing.T) {
		lis, err := spiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", spiffetls.MTLSServerWithSource(tlsconfig.AuthorizeID(workloadtest.WebID), s.oursDB))
		require.NoError(t, err)
		defer lis.Close()
		done := echoOnce(lis, func(net.Conn) (string, error) { return "", nil })
		_, err = gsspiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), gsspiffetls.MTLSClientWithSource(gstlsconfig.AuthorizeID(gsOther), s.gsWeb))
		assert.ErrorContains(t, err, "unexpected ID")
		got, recvErr := workloadtest.Recv(done, timeout)
		require.NoError(t, recvErr)
		assert.Error(t, got.err)
	})
	t.Run("our client refuses go-spiffe server", func(t *testing.T) {
		lis, err := gsspiffetls.ListenWithMode(ctx, "tcp", "127.0.0.1:0", gsspiffetls.MTLSServerWithSource(gstlsconfig.AuthorizeID(gsWeb), s.gsDB))
		require.NoError(t, err)
		defer lis.Close()
		done := echoOnce(lis, func(net.Conn) (string, error) { return "", nil })
		_, err = spiffetls.DialWithMode(ctx, "tcp", lis.Addr().String(), spiffetls.MTLSClientWithSource(tlsconfig.AuthorizeID(other), s.oursWeb))
		assert.ErrorContains(t, err, "not authorized")
		got, recvErr := workloadtest.Recv(done, timeout)
		require.NoError(t, recvErr)
		assert.Error(t, got.err)
	})
}

// serveHealth runs a gRPC health server with opts on a loopback TCP port
// until the test ends and returns its address.
func serveHealth(t *testing.T, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis)
	}()
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return lis.Addr().String()
}

// recordPeer is a unary interceptor storing the caller's ID, as read by
// peerID, in seen.
func recordPeer(seen chan<- string, peerID func(context.Context) (string, bool)) grpc.ServerOption {
	return grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, _ := peerID(ctx)
		seen <- id
		return h(ctx, req)
	})
}

// TestGRPCGoSPIFFEClientOurServer: go-spiffe's grpccredentials on the
// client, ours on the server.
func TestGRPCGoSPIFFEClientOurServer(t *testing.T) {
	s := newSources(t)
	seen := make(chan string, 1)
	addr := serveHealth(t,
		grpc.Creds(grpccredentials.MTLSServerCredentials(s.oursDB, s.oursDB, tlsconfig.AuthorizeID(workloadtest.WebID))),
		recordPeer(seen, func(ctx context.Context) (string, bool) {
			id, ok := grpccredentials.PeerIDFromContext(ctx)
			return id.String(), ok
		}))

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(gsspiffegrpc.MTLSClientCredentials(s.gsWeb, s.gsWeb, gstlsconfig.AuthorizeID(gsDB))))
	require.NoError(t, err)
	defer conn.Close()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	serverID, ok := gsspiffegrpc.PeerIDFromPeer(&p)
	require.True(t, ok)
	assert.Equal(t, gsDB, serverID)
	client, err := workloadtest.Recv(seen, timeout)
	require.NoError(t, err)
	assert.Equal(t, workloadtest.WebID.String(), client)

	// An authorizer that refuses the server fails the call.
	bad, err := grpc.NewClient(addr, grpc.WithTransportCredentials(gsspiffegrpc.MTLSClientCredentials(s.gsWeb, s.gsWeb, gstlsconfig.AuthorizeID(gsWeb))))
	require.NoError(t, err)
	defer bad.Close()
	_, err = healthpb.NewHealthClient(bad).Check(testContext(t), &healthpb.HealthCheckRequest{})
	assert.Error(t, err)
}

// TestGRPCOurClientGoSPIFFEServer: ours on the client, go-spiffe's on the
// server.
func TestGRPCOurClientGoSPIFFEServer(t *testing.T) {
	s := newSources(t)
	seen := make(chan string, 1)
	addr := serveHealth(t,
		grpc.Creds(gsspiffegrpc.MTLSServerCredentials(s.gsDB, s.gsDB, gstlsconfig.AuthorizeID(gsWeb))),
		recordPeer(seen, func(ctx context.Context) (string, bool) {
			id, ok := gsspiffegrpc.PeerIDFromContext(ctx)
			return id.String(), ok
		}))

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccredentials.MTLSClientCredentials(s.oursWeb, s.oursWeb, tlsconfig.AuthorizeID(workloadtest.DBID))))
	require.NoError(t, err)
	defer conn.Close()
	var p peer.Peer
	resp, err := healthpb.NewHealthClient(conn).Check(testContext(t), &healthpb.HealthCheckRequest{}, grpc.Peer(&p))
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
	serverID, ok := grpccredentials.PeerIDFromPeer(&p)
	require.True(t, ok)
	assert.Equal(t, workloadtest.DBID, serverID)
	client, err := workloadtest.Recv(seen, timeout)
	require.NoError(t, err)
	assert.Equal(t, workloadtest.WebID.String(), client)

	bad, err := grpc.NewClient(addr, grpc.WithTransportCredentials(grpccredentials.MTLSClientCredentials(s.oursWeb, s.oursWeb, tlsconfig.AuthorizeID(workloadtest.WebID))))
	require.NoError(t, err)
	defer bad.Close()
	_, err = healthpb.NewHealthClient(bad).Check(testContext(t), &healthpb.HealthCheckRequest{})
	assert.Error(t, err)
}
