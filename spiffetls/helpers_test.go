package spiffetls_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
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

func (c *testCA) svid(tb testing.TB, path string, dnsNames ...string) *x509svid.SVID {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(tb, err)
	id := spiffeid.RequireFromPath(c.td, path)
	chain, err := c.authority.SignX509SVID(context.Background(), ca.X509SVIDParams{
		PublicKey: key.Public(), ID: id, DNSNames: dnsNames,
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

func webCert(tb testing.TB, s *x509svid.SVID) *tls.Certificate {
	tb.Helper()
	cert := &tls.Certificate{PrivateKey: s.PrivateKey, Leaf: s.Certificates[0]}
	for _, c := range s.Certificates {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert
}

// rotatingSource is an x509svid.Source whose SVID can be swapped.
type rotatingSource struct {
	svid atomic.Pointer[x509svid.SVID]
}

func (r *rotatingSource) GetX509SVID() (*x509svid.SVID, error) { return r.svid.Load(), nil }

// workloadAPI is a Workload API server on a unix socket that hands out one
// X509-SVID and the CA's bundle. Every FetchX509SVID stream that ends is
// reported on ended.
type workloadAPI struct {
	workloadpb.UnimplementedWorkloadAPIServer
	resp  *workloadpb.X509SVIDResponse
	ended chan struct{}
	addr  string
}

func startWorkloadAPI(t *testing.T, c *testCA, svid *x509svid.SVID) *workloadAPI {
	t.Helper()
	certs, key, err := svid.MarshalRaw()
	require.NoError(t, err)
	w := &workloadAPI{
		resp: &workloadpb.X509SVIDResponse{Svids: []*workloadpb.X509SVID{{
			SpiffeId:    svid.ID.String(),
			X509Svid:    certs,
			X509SvidKey: key,
			Bundle:      c.root.Raw,
		}}},
		ended: make(chan struct{}, 16),
	}
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "api.sock")
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := grpc.NewServer()
	workloadpb.RegisterWorkloadAPIServer(srv, w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	w.addr = "unix://" + path
	return w
}

func (w *workloadAPI) FetchX509SVID(_ *workloadpb.X509SVIDRequest, stream grpc.ServerStreamingServer[workloadpb.X509SVIDResponse]) error {
	defer func() { w.ended <- struct{}{} }()
	if err := stream.Send(w.resp); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// sourceOptions point a new X509Source at w.
func (w *workloadAPI) sourceOptions() []workloadapi.X509SourceOption {
	return []workloadapi.X509SourceOption{workloadapi.WithClientOptions(workloadapi.WithAddr(w.addr))}
}
