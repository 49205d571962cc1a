package tlsconfig_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/require"
)

// Trust domains of the test CAs.
var (
	exampleOrg = spiffeid.RequireTrustDomainFromString("example.org")
	otherOrg   = spiffeid.RequireTrustDomainFromString("other.org")
	webExample = spiffeid.RequireTrustDomainFromString("web.example")
)

// failingSource fails every call.
type failingSource struct{ err error }

func (f failingSource) GetX509SVID() (*x509svid.SVID, error) { return nil, f.err }

func (f failingSource) GetX509BundleForTrustDomain(spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return nil, f.err
}

// result is what one connection saw on both ends.
type result struct {
	client, server       tls.ConnectionState
	clientErr, serverErr error
}

// server is a long-lived TLS server on loopback TCP: for every connection it
// completes the handshake, writes "ok" and closes.
type server struct {
	ln      net.Listener
	results chan result
	wg      sync.WaitGroup
}

func startServer(tb testing.TB, config *tls.Config) *server {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	s := &server{ln: ln, results: make(chan result, 16)}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.results <- serve(conn, config) })
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func serve(conn net.Conn, config *tls.Config) result {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Server(conn, config)
	var res result
	if res.serverErr = tc.Handshake(); res.serverErr != nil {
		return res
	}
	res.server = tc.ConnectionState()
	_, res.serverErr = tc.Write([]byte("ok"))
	// Wait for the client to finish reading, so that a client-side
	// rejection is seen as such and not as a reset.
	_, _ = io.Copy(io.Discard, tc)
	return res
}

// dial connects to s with config, reads the server's "ok" (which also
// processes TLS 1.3 session tickets) and returns what both ends saw.
func (s *server) dial(tb testing.TB, config *tls.Config) result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := tls.Dialer{Config: config}
	var res result
	conn, err := d.DialContext(ctx, "tcp", s.ln.Addr().String())
	if err == nil {
		tc := conn.(*tls.Conn)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		res.client = tc.ConnectionState()
		buf := make([]byte, 2)
		if _, err = io.ReadFull(tc, buf); err == nil && string(buf) != "ok" {
			err = errors.New("unexpected data")
		}
		tc.Close()
	}
	res.clientErr = err
	srv := <-s.results
	res.server, res.serverErr = srv.server, srv.serverErr
	return res
}

// handshake runs one connection between a fresh server and a client.
func handshake(tb testing.TB, serverConf, clientConf *tls.Config) result {
	tb.Helper()
	return startServer(tb, serverConf).dial(tb, clientConf)
}

// counter is an Authorizer that counts its calls and can be switched to
// reject.
type counter struct {
	calls  atomic.Int32
	reject atomic.Bool
}

var errRejected = errors.New("rejected by test")

func (c *counter) authorize(spiffeid.ID, [][]*x509.Certificate) error {
	c.calls.Add(1)
	if c.reject.Load() {
		return errRejected
	}
	return nil
}

// bundleSource is an x509bundle.Source whose bundle can be swapped.
type bundleSource struct {
	b atomic.Pointer[x509bundle.Bundle]
}

func (s *bundleSource) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return x509bundle.NewSet(s.b.Load()).GetX509BundleForTrustDomain(td)
}
