//go:build !windows

package nested_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/upstream/nested"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fakeUpstream is a node API server whose MintX509CA signs with a test CA
// and lets the test tamper with the answer; the other methods are not
// served.
type fakeUpstream struct {
	nodepb.NodeServer
	authority *ca.X509Authority
	tamper    func(*nodepb.MintX509CAResponse)
	bundle    []byte // PublishJWTKeys's answer

	mu      sync.Mutex
	callers []string // serial numbers of the callers' certificates
}

func (f *fakeUpstream) MintX509CA(ctx context.Context, req *nodepb.MintX509CARequest) (*nodepb.MintX509CAResponse, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			f.mu.Lock()
			f.callers = append(f.callers, info.State.PeerCertificates[0].SerialNumber.String())
			f.mu.Unlock()
		}
	}
	chain, err := f.authority.SignX509CA(ctx, ca.X509CAParams{CSR: req.Csr, TTL: time.Duration(req.TtlSeconds) * time.Second})
	if err != nil {
		return nil, err
	}
	out := &nodepb.MintX509CAResponse{Roots: [][]byte{chain[len(chain)-1].Raw}}
	for _, c := range chain {
		out.CertChain = append(out.CertChain, c.Raw)
	}
	if f.tamper != nil {
		f.tamper(out)
	}
	return out, nil
}

func (f *fakeUpstream) PublishJWTKeys(context.Context, *nodepb.PublishJWTKeysRequest) (*nodepb.PublishJWTKeysResponse, error) {
	return &nodepb.PublishJWTKeysResponse{Bundle: f.bundle}, nil
}

// startFake serves f over TLS with an SVID of the server's SPIFFE ID from
// root, and returns an Authority on it presenting a client SVID of root.
func startFake(t *testing.T, root *testca.CA, f *fakeUpstream) *nested.Authority {
	t.Helper()
	return startFakeTrusting(t, root, root, f)
}

// startFakeTrusting is startFake with the server's SVID from serverCA and
// the Authority's SVID and bundle from trust.
func startFakeTrusting(t *testing.T, serverCA, trust *testca.CA, f *fakeUpstream) *nested.Authority {
	t.Helper()
	t.Cleanup(leaktest.Check(t))
	serverSVID := serverCA.NewSVID(t, nodeapi.ServerPath)
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*testca.TLSCertificate(serverSVID)},
		ClientAuth: tls.RequireAnyClientCert,
	})))
	nodepb.RegisterNodeServer(gs, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	up, err := nested.New(nested.Config{
		ServerAddress: lis.Addr().String(),
		TrustDomain:   td,
		SVIDSource:    testca.NewX509Source(trust.NewSVID(t, "/downstream")),
		BundleSource:  trust.X509Bundle(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { up.Close() })
	return up
}

// TestAnswerChecked checks that an answer of the upstream server that is
// not a CA of the trust domain for the requested key, verifying to the
// roots sent with it, is refused.
func TestAnswerChecked(t *testing.T) {
	root := testca.New(t, td)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: root.Key(), Certificate: root.Cert()})
	require.NoError(t, err)
	other := testca.New(t, td)
	otherAuthority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: other.Key(), Certificate: other.Cert()})
	require.NoError(t, err)
	leaf, _ := root.NewLeaf(t, spiffeid.RequireFromPath(td, "/w"))
	foreign := testca.New(t, spiffeid.RequireTrustDomainFromString("other.org"))
	foreignAuthority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: foreign.Key(), Certificate: foreign.Cert()})
	require.NoError(t, err)

	t.Run("good", func(t *testing.T) {
		up := startFake(t, root, &fakeUpstream{authority: authority})
		req := newCSR(t, td.IDString())
		resp, err := up.MintX509CA(t.Context(), req)
		require.NoError(t, err)
		assert.Equal(t, root.Cert().Raw, resp.Roots[0].Raw)
		assert.Len(t, resp.Chain, 2)
		// Without the public key, the CSR's is used.
		req.PublicKey = nil
		_, err = up.MintX509CA(t.Context(), req)
		require.NoError(t, err)
	})

	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, r *nodepb.MintX509CAResponse)
		want   string
	}{
		{"no chain", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.CertChain = nil }, "no certificate"},
		{"no roots", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.Roots = nil }, "no root"},
		{"long chain", func(_ *testing.T, r *nodepb.MintX509CAResponse) {
			r.CertChain = make([][]byte, nodeapi.MaxChainLength+1)
		}, "exceed"},
		{"many roots", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.Roots = make([][]byte, 65) }, "exceed"},
		{"garbage chain", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.CertChain[0] = []byte("x") }, "chain: certificate 0"},
		{"garbage root", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.Roots[0] = []byte("x") }, "roots: certificate 0"},
		{"not a CA", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.CertChain[0] = leaf[0].Raw }, "not a CA"},
		{"another key", func(t *testing.T, r *nodepb.MintX509CAResponse) {
			chain, err := authority.SignX509CA(t.Context(), ca.X509CAParams{CSR: newCSR(t).CSR})
			require.NoError(t, err)
			r.CertChain[0] = chain[0].Raw
		}, "not for the key"},
		{"another root", func(_ *testing.T, r *nodepb.MintX509CAResponse) { r.Roots[0] = other.Cert().Raw }, "does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startFake(t, root, &fakeUpstream{authority: authority, tamper: func(r *nodepb.MintX509CAResponse) { tc.tamper(t, r) }})
			_, err := up.MintX509CA(t.Context(), newCSR(t, td.IDString()))
			require.Error(t, err)
			assert.ErrorContains(t, err, tc.want)
		})
	}

	t.Run("CA of another trust domain", func(t *testing.T) {
		up := startFake(t, root, &fakeUpstream{authority: foreignAuthority, tamper: func(r *nodepb.MintX509CAResponse) {}})
		_, err := up.MintX509CA(t.Context(), newCSR(t))
		require.Error(t, err)
		assert.ErrorContains(t, err, "does not name exactly spiffe://example.org")
	})
	t.Run("server of another CA", func(t *testing.T) {
		// The Authority trusts root's bundle, not other's: the server is
		// refused in the handshake.
		up := startFakeTrusting(t, other, root, &fakeUpstream{authority: otherAuthority})
		_, err := up.MintX509CA(t.Context(), newCSR(t, td.IDString()))
		require.Error(t, err)
		assert.ErrorContains(t, err, "did not sign")
	})
	t.Run("request refused", func(t *testing.T) {
		up := startFake(t, root, &fakeUpstream{authority: authority})
		req := newCSR(t, td.IDString())
		req.TrustDomain = spiffeid.RequireTrustDomainFromString("other.org")
		_, err := up.MintX509CA(t.Context(), req)
		assert.ErrorContains(t, err, "is not the upstream server's")
		req.TrustDomain, req.TTL = td, -time.Second
		_, err = up.MintX509CA(t.Context(), req)
		assert.ErrorContains(t, err, "negative")
		req.TTL, req.CSR = time.Hour, []byte("x")
		_, err = up.MintX509CA(t.Context(), req)
		assert.ErrorContains(t, err, "did not sign")
		require.NoError(t, up.Close())
		require.NoError(t, up.Close())
		_, err = up.MintX509CA(t.Context(), newCSR(t, td.IDString()))
		assert.ErrorContains(t, err, "closed")
	})
}

// TestNewRefuses checks New's refusals of an incomplete configuration.
func TestNewRefuses(t *testing.T) {
	root := testca.New(t, td)
	src := testca.NewX509Source(root.NewSVID(t, "/d"))
	good := nested.Config{ServerAddress: "127.0.0.1:1", TrustDomain: td, SVIDSource: src, BundleSource: root.X509Bundle()}
	for _, tc := range []struct {
		name   string
		change func(*nested.Config)
		want   string
	}{
		{"no address", func(c *nested.Config) { c.ServerAddress = "" }, "ServerAddress"},
		{"bad address", func(c *nested.Config) { c.ServerAddress = "host" }, "not host:port"},
		{"no trust domain", func(c *nested.Config) { c.TrustDomain = spiffeid.TrustDomain{} }, "TrustDomain"},
		{"no SVID source", func(c *nested.Config) { c.SVIDSource = nil }, "SVIDSource"},
		{"no bundle source", func(c *nested.Config) { c.BundleSource = nil }, "BundleSource"},
		{"negative timeout", func(c *nested.Config) { c.Timeout = -1 }, "Timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.change(&cfg)
			_, err := nested.New(cfg)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	up, err := nested.New(good)
	require.NoError(t, err)
	require.NoError(t, up.Close(), "closing an Authority that never dialed")
}

// TestPublishJWTKeysAnswer checks the answers of PublishJWTKeys the
// Authority refuses, and keys it cannot send.
func TestPublishJWTKeysAnswer(t *testing.T) {
	root := testca.New(t, td)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: root.Key(), Certificate: root.Cert()})
	require.NoError(t, err)
	good, err := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root.Cert()}).Marshal()
	require.NoError(t, err)
	key := testca.NewECKey(t).Public()

	up := startFake(t, root, &fakeUpstream{authority: authority, bundle: good})
	b, err := up.PublishJWTKeys(t.Context(), map[string]crypto.PublicKey{"b": key, "a": key})
	require.NoError(t, err)
	assert.Equal(t, td, b.TrustDomain())
	_, err = up.PublishJWTKeys(t.Context(), map[string]crypto.PublicKey{"a": "not a key"})
	assert.ErrorContains(t, err, `JWT key "a"`)

	up = startFake(t, root, &fakeUpstream{authority: authority, bundle: []byte("{")})
	_, err = up.PublishJWTKeys(t.Context(), nil)
	assert.ErrorContains(t, err, "the bundle of the upstream server")

	up = startFakeTrusting(t, root, testca.New(t, td), &fakeUpstream{authority: authority, bundle: good})
	_, err = up.PublishJWTKeys(t.Context(), nil)
	assert.ErrorContains(t, err, "did not take the JWT keys")
	require.NoError(t, up.Close())
	_, err = up.PublishJWTKeys(t.Context(), nil)
	assert.ErrorContains(t, err, "closed")
}

// TestRenewedSVIDPresented checks that each call presents the X509-SVID
// the source holds then, not the one of an earlier connection, which the
// upstream server would refuse once expired.
func TestRenewedSVIDPresented(t *testing.T) {
	root := testca.New(t, td)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: root.Key(), Certificate: root.Cert()})
	require.NoError(t, err)
	f := &fakeUpstream{authority: authority}
	first, second := root.NewSVID(t, "/downstream"), root.NewSVID(t, "/downstream")
	src := testca.NewX509Source(first)
	t.Cleanup(leaktest.Check(t))
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*testca.TLSCertificate(root.NewSVID(t, nodeapi.ServerPath))},
		ClientAuth: tls.RequireAnyClientCert,
	})))
	nodepb.RegisterNodeServer(gs, f)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	up, err := nested.New(nested.Config{ServerAddress: lis.Addr().String(), TrustDomain: td, SVIDSource: src, BundleSource: root.X509Bundle()})
	require.NoError(t, err)
	defer up.Close()

	_, err = up.MintX509CA(t.Context(), newCSR(t, td.IDString()))
	require.NoError(t, err)
	src.Set(second)
	_, err = up.MintX509CA(t.Context(), newCSR(t, td.IDString()))
	require.NoError(t, err)
	f.mu.Lock()
	defer f.mu.Unlock()
	assert.Equal(t, []string{first.Certificates[0].SerialNumber.String(), second.Certificates[0].SerialNumber.String()}, f.callers)
}
