package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	gsx509bundle "github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gstlsconfig "github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/conformance/internal/workloadtest"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// BenchmarkWorkloadFetchX509SVID is one FetchX509SVID round trip over a
// unix socket to spiffekit's endpoint.Server: open the stream, receive and
// parse the first message, end the stream. Both clients keep one
// connection and talk to the same server serving the same SVID.
func BenchmarkWorkloadFetchX509SVID(b *testing.B) {
	f := workloadtest.New(b)
	require.NoError(b, f.Handler.Set(f.UID, f.Snapshot(f.SVID(b, workloadtest.WebID, ""))))
	srv := workloadtest.Serve(b, endpoint.Config{Handler: f.Handler})
	ctx := context.Background()

	b.Run("impl=spiffekit", func(b *testing.B) {
		client, err := workloadapi.New(ctx, workloadapi.WithAddr(srv.Addr))
		require.NoError(b, err)
		defer client.Close()
		b.ReportAllocs()
		for b.Loop() {
			svid, err := client.FetchX509SVID(ctx)
			if err != nil {
				b.Fatal(err)
			}
			sinkString = svid.ID.Path()
		}
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		client, err := gsworkloadapi.New(ctx, gsworkloadapi.WithAddr(srv.Addr))
		require.NoError(b, err)
		defer client.Close()
		b.ReportAllocs()
		for b.Loop() {
			svid, err := client.FetchX509SVID(ctx)
			if err != nil {
				b.Fatal(err)
			}
			sinkString = svid.ID.Path()
		}
	})
}

// BenchmarkWorkloadRotationFanout measures one X509-SVID rotation reaching
// every open FetchX509SVID stream on spiffekit's endpoint.Server: an op is
// MemoryHandler.Set of a new Snapshot (with one of two pre-minted SVIDs, so
// every rotation changes the message) until each stream has received the
// new message. The watchers are go-spiffe's generated stubs, 100 streams
// per connection, that only decode the protobuf message, so the figure is
// the server's fan-out plus protobuf decoding, not X.509 parsing.
func BenchmarkWorkloadRotationFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			benchmarkFanout(b, n)
		})
	}
}

func benchmarkFanout(b *testing.B, streams int) {
	const perConn = 100
	f := workloadtest.New(b)
	svids := []*x509svid.SVID{f.SVID(b, workloadtest.WebID, ""), f.SVID(b, workloadtest.WebID, "")}
	require.NoError(b, f.Handler.Set(f.UID, f.Snapshot(svids[1])))
	srv := workloadtest.Serve(b, endpoint.Config{Handler: f.Handler})

	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "workload.spiffe.io", "true"))
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()

	var received atomic.Int64
	all := make(chan struct{}, 1)
	ready := make(chan error, streams)
	for c := 0; c < streams/perConn; c++ {
		conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(b, err)
		b.Cleanup(func() { conn.Close() })
		stub := workload.NewSpiffeWorkloadAPIClient(conn)
		for range perConn {
			wg.Go(func() {
				stream, err := stub.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
				if err == nil {
					_, err = stream.Recv()
				}
				ready <- err
				if err != nil {
					return
				}
				for {
					if _, err := stream.Recv(); err != nil {
						return
					}
					if received.Add(1) == int64(streams) {
						all <- struct{}{}
					}
				}
			})
		}
	}
	for range streams {
		require.NoError(b, <-ready)
	}

	b.ReportAllocs()
	i := 0
	for b.Loop() {
		received.Store(0)
		require.NoError(b, f.Handler.Set(f.UID, f.Snapshot(svids[i%2])))
		<-all
		i++
	}
	b.ReportMetric(float64(streams), "streams")
}

// BenchmarkMTLSHandshake is a full mutual TLS 1.3 handshake (X25519, ECDSA
// P-256 certificates, no resumption) over a unix socket pair. spiffekit and
// go-spiffe authorize the peer by SPIFFE ID through their tlsconfig
// packages; raw is bare crypto/tls with the same certificates and keys,
// verifying the chain against the same root and the server's DNS name.
func BenchmarkMTLSHandshake(b *testing.B) {
	f := workloadtest.New(b)
	ctx := context.Background()
	mint := func(path, dns string) *x509svid.SVID {
		key := workloadtest.NewKey(b)
		id := workloadtest.WebID
		if path == "/db" {
			id = workloadtest.DBID
		}
		chain, err := f.X509.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: id, DNSNames: []string{dns}})
		require.NoError(b, err)
		return &x509svid.SVID{ID: id, Certificates: chain[:1], PrivateKey: key}
	}
	server, client := mint("/db", "db.example.org"), mint("/web", "web.example.org")
	root := f.X509.Certificate()
	tls13 := func(c *tls.Config) *tls.Config {
		c.MinVersion, c.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
		c.CurvePreferences = []tls.CurveID{tls.X25519}
		return c
	}

	b.Run("impl=spiffekit", func(b *testing.B) {
		bundle := x509bundle.FromX509Authorities(workloadtest.TD, []*x509.Certificate{root})
		handshakes(b,
			tls13(tlsconfig.MTLSServerConfig(server, bundle, tlsconfig.AuthorizeID(client.ID))),
			tls13(tlsconfig.MTLSClientConfig(client, bundle, tlsconfig.AuthorizeID(server.ID))))
	})
	b.Run("impl=go-spiffe", func(b *testing.B) {
		td := gsid.RequireTrustDomainFromString(workloadtest.TD.Name())
		bundle := gsx509bundle.FromX509Authorities(td, []*x509.Certificate{root})
		gsServer := &gsx509svid.SVID{ID: gsid.RequireFromString(server.ID.String()), Certificates: server.Certificates, PrivateKey: server.PrivateKey}
		gsClient := &gsx509svid.SVID{ID: gsid.RequireFromString(client.ID.String()), Certificates: client.Certificates, PrivateKey: client.PrivateKey}
		handshakes(b,
			tls13(gstlsconfig.MTLSServerConfig(gsServer, bundle, gstlsconfig.AuthorizeID(gsClient.ID))),
			tls13(gstlsconfig.MTLSClientConfig(gsClient, bundle, gstlsconfig.AuthorizeID(gsServer.ID))))
	})
	b.Run("impl=raw", func(b *testing.B) {
		roots := x509.NewCertPool()
		roots.AddCert(root)
		cert := func(s *x509svid.SVID) tls.Certificate {
			return tls.Certificate{Certificate: [][]byte{s.Certificates[0].Raw}, PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
		}
		handshakes(b,
			tls13(&tls.Config{Certificates: []tls.Certificate{cert(server)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots}),
			tls13(&tls.Config{Certificates: []tls.Certificate{cert(client)}, RootCAs: roots, ServerName: "db.example.org"}))
	})
}

func handshakes(b *testing.B, serverConf, clientConf *tls.Config) {
	b.ReportAllocs()
	for b.Loop() {
		sc, cc := connPair(b)
		errc := make(chan error, 1)
		go func() { errc <- tls.Server(sc, serverConf).Handshake() }()
		clientErr := tls.Client(cc, clientConf).Handshake()
		serverErr := <-errc
		sc.Close()
		cc.Close()
		if clientErr != nil || serverErr != nil {
			b.Fatal(clientErr, serverErr)
		}
	}
}

// connPair returns the two ends of a kernel socket pair: buffered like
// TCP, without TCP's connection set-up cost.
func connPair(b *testing.B) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(b, err)
	var conns [2]net.Conn
	for i, fd := range fds {
		file := os.NewFile(uintptr(fd), "pair")
		conns[i], err = net.FileConn(file)
		file.Close()
		require.NoError(b, err)
	}
	return conns[0], conns[1]
}
