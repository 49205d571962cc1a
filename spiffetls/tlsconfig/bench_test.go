//go:build unix

package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// BenchmarkHandshake compares a full mTLS handshake between configs of this
// package with one between bare crypto/tls configs using the same keys,
// certificates, TLS version and key exchange. The bare client verifies the
// server's DNS name against the root; the bare server verifies the client
// chain against the same root.
func BenchmarkHandshake(b *testing.B) {
	ca := testca.New(b, exampleOrg)
	serverSVID := ca.NewSVID(b, "/server", "localhost")
	clientSVID := ca.NewSVID(b, "/client")
	tune := func(c *tls.Config) *tls.Config {
		c.MinVersion = tls.VersionTLS13
		c.MaxVersion = tls.VersionTLS13
		c.CurvePreferences = []tls.CurveID{tls.X25519}
		return c
	}

	b.Run("tlsconfig", func(b *testing.B) {
		serverConf := tune(tlsconfig.MTLSServerConfig(serverSVID, ca.X509Bundle(), tlsconfig.AuthorizeID(clientSVID.ID)))
		clientConf := tune(tlsconfig.MTLSClientConfig(clientSVID, ca.X509Bundle(), tlsconfig.AuthorizeID(serverSVID.ID)))
		benchmarkHandshake(b, serverConf, clientConf)
	})
	b.Run("crypto-tls", func(b *testing.B) {
		serverCert, err := tlsconfig.GetCertificate(serverSVID)(nil)
		if err != nil {
			b.Fatal(err)
		}
		clientCert, err := tlsconfig.GetCertificate(clientSVID)(nil)
		if err != nil {
			b.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AddCert(ca.Root())
		serverConf := tune(&tls.Config{
			Certificates: []tls.Certificate{*serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    roots,
		})
		clientConf := tune(&tls.Config{
			Certificates: []tls.Certificate{*clientCert},
			RootCAs:      roots,
			ServerName:   "localhost",
		})
		benchmarkHandshake(b, serverConf, clientConf)
	})
}

func benchmarkHandshake(b *testing.B, serverConf, clientConf *tls.Config) {
	b.ReportAllocs()
	for b.Loop() {
		sc, cc := socketPair(b)
		var wg sync.WaitGroup
		var serverErr error
		wg.Go(func() {
			serverErr = tls.Server(sc, serverConf).Handshake()
		})
		clientErr := tls.Client(cc, clientConf).Handshake()
		wg.Wait()
		sc.Close()
		cc.Close()
		if serverErr != nil || clientErr != nil {
			b.Fatal(serverErr, clientErr)
		}
	}
}

// socketPair returns two connected unix stream sockets: kernel-buffered like
// TCP, without TCP's connection set-up.
func socketPair(tb testing.TB) (net.Conn, net.Conn) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conns := make([]net.Conn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "socketpair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			tb.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}
