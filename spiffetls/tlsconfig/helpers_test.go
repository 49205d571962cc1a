package tlsconfig_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/require"
)

// testCA is a root authority for one trust domain, built with package ca.
type testCA struct {
	td        spiffeid.TrustDomain
	root      *x509.Certificate
	authority *ca.X509Authority
}

func newTestCA(tb testing.TB, td string) *testCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	trustDomain := spiffeid.RequireTrustDomainFromString(td)
	root, err := ca.CreateRoot(context.Background(), ca.RootParams{Signer: key, TrustDomain: trustDomain})
	require.NoError(tb, err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: key, Certificate: root})
	require.NoError(tb, err)
	return &testCA{td: trustDomain, root: root, authority: authority}
}

// svid mints an X509-SVID for path with extra DNS names.
func (c *testCA) svid(tb testing.TB, path string, dnsNames ...string) *x509svid.SVID {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	id := spiffeid.RequireFromPath(c.td, path)
	chain, err := c.authority.SignX509SVID(context.Background(), ca.X509SVIDParams{
		PublicKey: key.Public(),
		ID:        id,
		DNSNames:  dnsNames,
	})
	require.NoError(tb, err)
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

func (c *testCA) bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(c.td, []*x509.Certificate{c.root})
}

func (c *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.root)
	return p
}

// rotatingSource is an x509svid.Source whose SVID can be swapped.
type rotatingSource struct {
	svid atomic.Pointer[x509svid.SVID]
}

func newRotatingSource(s *x509svid.SVID) *rotatingSource {
	r := &rotatingSource{}
	r.svid.Store(s)
	return r
}

func (r *rotatingSource) GetX509SVID() (*x509svid.SVID, error) { return r.svid.Load(), nil }

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
