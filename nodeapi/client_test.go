package nodeapi_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fakeServer speaks the node protocol with answers a test chooses, to
// check what the client accepts from a server that lies or errs. It
// presents an SVID of the server ID from its own test CA.
type fakeServer struct {
	root *testca.CA
	addr string
	// agentSVID answers Attest and RenewAgent, given the CSR's key.
	agentSVID func(pub crypto.PublicKey) *nodepb.AgentSVID
	// challenges is how many challenges Attest sends first.
	challenges int
	// signed answers SignX509SVIDs.
	signed func(*nodepb.SignX509SVIDsRequest) *nodepb.SignX509SVIDsResponse
	// updates are sent on Sync, in order; then the stream ends, unless
	// open is set: it then stays open until the client ends it.
	updates []*nodepb.SyncResponse
	open    bool
	// peers, when not nil, receives the leaf certificate each Sync and
	// SignX509SVIDs call was made with.
	peers chan *x509.Certificate
	// conns counts the connections open, until the server sees them
	// closed.
	conns atomic.Int64
}

// countingListener counts its connections open in n.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.n.Add(1)
	return &countedConn{Conn: c, n: l.n}, nil
}

type countedConn struct {
	net.Conn
	n    *atomic.Int64
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.n.Add(-1) })
	return c.Conn.Close()
}

// saw sends the agent's leaf certificate of the call to f.peers.
func (f *fakeServer) saw(ctx context.Context) {
	if f.peers == nil {
		return
	}
	var leaf *x509.Certificate
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			leaf = info.State.PeerCertificates[0]
		}
	}
	f.peers <- leaf
}

func startFake(t *testing.T, f *fakeServer, serverPath string) *fakeServer {
	t.Helper()
	t.Cleanup(leaktest.Check(t)) // checked after the fake and its clients stopped
	if f.root == nil {
		f.root = testca.New(t, td)
	}
	cert := testca.TLSCertificate(f.root.NewSVID(t, serverPath))
	gs := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{*cert},
		ClientAuth:   tls.RequestClientCert,
	})))
	nodepb.RegisterNodeServer(gs, fakeService{f})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	lis = countingListener{lis, &f.conns}
	done := make(chan struct{})
	go func() { defer close(done); gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	f.addr = lis.Addr().String()
	return f
}

func (f *fakeServer) clientConfig() nodeapi.ClientConfig {
	return nodeapi.ClientConfig{Servers: []string{f.addr}, TrustDomain: td, Bundle: f.root.X509Bundle()}
}

// leafFor signs an X509-SVID for id and pub with c.
func leafFor(t testing.TB, c *testca.CA, id spiffeid.ID, pub crypto.PublicKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		URIs:         []*url.URL{id.URL()},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.Cert(), pub, c.Key())
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert
}

func bundleDoc(t testing.TB, c *testca.CA) []byte {
	t.Helper()
	doc, err := spiffebundle.FromX509Authorities(c.TrustDomain(), []*x509.Certificate{c.Root()}).Marshal()
	require.NoError(t, err)
	return doc
}

type fakeService struct{ f *fakeServer }

func csrKey(der []byte) (crypto.PublicKey, error) {
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return csr.PublicKey, nil
}

func (s fakeService) Attest(stream grpc.BidiStreamingServer[nodepb.AttestRequest, nodepb.AttestResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	for range s.f.challenges {
		if err := stream.Send(&nodepb.AttestResponse{Challenge: []byte("prove it")}); err != nil {
			return err
		}
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
	pub, err := csrKey(first.Csr)
	if err != nil {
		return err
	}
	return stream.Send(&nodepb.AttestResponse{Result: s.f.agentSVID(pub)})
}

func (s fakeService) RenewAgent(_ context.Context, req *nodepb.RenewAgentRequest) (*nodepb.RenewAgentResponse, error) {
	pub, err := csrKey(req.Csr)
	if err != nil {
		return nil, err
	}
	return &nodepb.RenewAgentResponse{Svid: s.f.agentSVID(pub)}, nil
}

func (s fakeService) Sync(_ *nodepb.SyncRequest, stream grpc.ServerStreamingServer[nodepb.SyncResponse]) error {
	s.f.saw(stream.Context())
	for _, u := range s.f.updates {
		if err := stream.Send(u); err != nil {
			return err
		}
	}
	if s.f.open {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return status.Error(codes.Unavailable, "fake: end of updates")
}

func (s fakeService) SignX509SVIDs(ctx context.Context, req *nodepb.SignX509SVIDsRequest) (*nodepb.SignX509SVIDsResponse, error) {
	s.f.saw(ctx)
	return s.f.signed(req), nil
}

func (s fakeService) SignJWTSVID(context.Context, *nodepb.SignJWTSVIDRequest) (*nodepb.SignJWTSVIDResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

// SignWITSVID answers as a server without WIT-SVIDs for entry "old", and
// with an empty token, which the client must refuse, for the others.
func (s fakeService) SignWITSVID(_ context.Context, r *nodepb.SignWITSVIDRequest) (*nodepb.SignWITSVIDResponse, error) {
	if r.EntryId == "old" {
		return nil, status.Error(codes.Unimplemented, "unknown method SignWITSVID")
	}
	return &nodepb.SignWITSVIDResponse{}, nil
}

func (s fakeService) MintX509CA(context.Context, *nodepb.MintX509CARequest) (*nodepb.MintX509CAResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

func (s fakeService) PublishJWTKeys(context.Context, *nodepb.PublishJWTKeysRequest) (*nodepb.PublishJWTKeysResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake")
}

// nodeName is the test attestor's client, which the fake server ignores.
var nodeName = echoClient{"node1"}

// Property: the agent accepts from attestation and renewal only an SVID
// of its own trust domain, for its own key, naming the ID the message
// says, that verifies with the bundle that comes with it.
func TestClientRejectsBadAgentSVIDs(t *testing.T) {
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")
	evil := testca.New(t, spiffeid.RequireTrustDomainFromString("evil.example"))
	other := testca.New(t, td) // same name, other keys
	for _, tt := range []struct {
		name string
		svid func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID
		want string
	}{
		{"another key", func(f *fakeServer, _ crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{leafFor(t, f.root, agentID, newKey(t).Public()).Raw}, Bundle: bundleDoc(t, f.root)}
		}, "does not certify the agent's key"},
		{"another trust domain", func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID {
			id := spiffeid.RequireFromPath(evil.TrustDomain(), "/spiffekit/agent/echo/node1")
			return &nodepb.AgentSVID{SpiffeId: id.String(), CertChain: [][]byte{leafFor(t, evil, id, pub).Raw}, Bundle: bundleDoc(t, evil)}
		}, "outside trust domain"},
		{"ID differs from the message", func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String() + "x", CertChain: [][]byte{leafFor(t, f.root, agentID, pub).Raw}, Bundle: bundleDoc(t, f.root)}
		}, "outside trust domain"},
		{"not verified by the bundle", func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{leafFor(t, other, agentID, pub).Raw}, Bundle: bundleDoc(t, f.root)}
		}, "does not verify"},
		{"garbage bundle", func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{leafFor(t, f.root, agentID, pub).Raw}, Bundle: []byte("{")}
		}, "bundle from the server"},
		{"empty chain", func(*fakeServer, crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String()}
		}, "empty certificate chain"},
		{"chain too long", func(f *fakeServer, pub crypto.PublicKey) *nodepb.AgentSVID {
			chain := make([][]byte, nodeapi.MaxChainLength+1)
			for i := range chain {
				chain[i] = leafFor(t, f.root, agentID, pub).Raw
			}
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: chain, Bundle: bundleDoc(t, f.root)}
		}, "exceeds"},
		{"garbage certificate", func(*fakeServer, crypto.PublicKey) *nodepb.AgentSVID {
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{[]byte("not DER")}}
		}, "certificate 0"},
		{"no SPIFFE ID", func(f *fakeServer, _ crypto.PublicKey) *nodepb.AgentSVID {
			chain, _ := f.root.NewLeaf(t, spiffeid.ID{})
			return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{chain[0].Raw}, Bundle: bundleDoc(t, f.root)}
		}, "the agent SVID"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeServer{challenges: 1}
			f.agentSVID = func(pub crypto.PublicKey) *nodepb.AgentSVID { return tt.svid(f, pub) }
			startFake(t, f, nodeapi.ServerPath)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := nodeapi.Attest(ctx, f.clientConfig(), nodeName, newKey(t))
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)

			// The same checks apply to renewal.
			a := &agent{key: newKey(t)}
			a.svid = &nodeapi.AgentSVID{ID: agentID, Certificates: []*x509.Certificate{leafFor(t, f.root, agentID, a.key.Public())}}
			c, err := nodeapi.Dial(f.clientConfig(), a)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.RenewAgent(ctx, newKey(t))
			require.Error(t, err)
			assert.ErrorContains(t, err, tt.want)
		})
	}

	// The honest answer passes, after a challenge.
	f := &fakeServer{challenges: 2}
	f.agentSVID = func(pub crypto.PublicKey) *nodepb.AgentSVID {
		return &nodepb.AgentSVID{SpiffeId: agentID.String(), CertChain: [][]byte{leafFor(t, f.root, agentID, pub).Raw}, Bundle: bundleDoc(t, f.root)}
	}
	startFake(t, f, nodeapi.ServerPath)
	got, err := nodeapi.Attest(t.Context(), f.clientConfig(), nodeName, newKey(t))
	require.NoError(t, err)
	assert.Equal(t, agentID, got.ID)
}

// Property: the client talks only to a server presenting the server ID of
// its trust domain; another SVID of the trust domain (a workload's, an
// agent's) is not a server.
func TestClientRejectsServerWithAnotherID(t *testing.T) {
	f := &fakeServer{agentSVID: func(crypto.PublicKey) *nodepb.AgentSVID { return nil }}
	startFake(t, f, "/spiffekit/agent/echo/impostor")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err := nodeapi.Attest(ctx, f.clientConfig(), nodeName, newKey(t))
	require.Error(t, err)
	assert.ErrorContains(t, err, "not spiffe://example.org/spiffekit/server")
}

// Property: too many challenges end the exchange (a server cannot keep an
// agent answering forever).
func TestClientBoundsChallenges(t *testing.T) {
	f := &fakeServer{challenges: 100, agentSVID: func(crypto.PublicKey) *nodepb.AgentSVID { return nil }}
	startFake(t, f, nodeapi.ServerPath)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := nodeapi.Attest(ctx, f.clientConfig(), nodeName, newKey(t))
	assert.ErrorContains(t, err, "too many challenges")
}

// Property: signed X509-SVIDs must answer the requests one for one; an
// unparsable chain fails its own request only.
func TestClientChecksSignedResults(t *testing.T) {
	agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/echo/node1")
	f := &fakeServer{}
	startFake(t, f, nodeapi.ServerPath)
	a := &agent{key: newKey(t)}
	a.svid = &nodeapi.AgentSVID{ID: agentID, Certificates: []*x509.Certificate{leafFor(t, f.root, agentID, a.key.Public())}}
	c, err := nodeapi.Dial(f.clientConfig(), a)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	csr, err := nodeapi.NewCSR(newKey(t), spiffeid.ID{})
	require.NoError(t, err)
	reqs := []nodeapi.X509SVIDRequest{{EntryID: "a", CSR: csr}, {EntryID: "b", CSR: csr}}

	f.signed = func(*nodepb.SignX509SVIDsRequest) *nodepb.SignX509SVIDsResponse {
		return &nodepb.SignX509SVIDsResponse{Results: []*nodepb.X509SVIDResult{{}}}
	}
	_, err = c.SignX509SVIDs(t.Context(), reqs)
	assert.ErrorContains(t, err, "1 results for 2 requests")

	f.signed = func(*nodepb.SignX509SVIDsRequest) *nodepb.SignX509SVIDsResponse {
		return &nodepb.SignX509SVIDsResponse{Results: []*nodepb.X509SVIDResult{{CertChain: [][]byte{[]byte("junk")}}, {Error: "no"}}}
	}
	res, err := c.SignX509SVIDs(t.Context(), reqs)
	require.NoError(t, err)
	assert.ErrorContains(t, res[0].Err, "certificate 0")
	assert.ErrorContains(t, res[1].Err, "entry b: no")

	// A malformed update ends the entry stream with an error.
	f.updates = []*nodepb.SyncResponse{{DeletedIds: []string{"../etc"}}}
	err = c.Sync(t.Context(), nil, func(nodeapi.Update) error { return nil })
	assert.ErrorContains(t, err, "invalid deleted entry ID")

	// An error from the callback ends it too, and is returned as is.
	f.updates = []*nodepb.SyncResponse{{}}
	stop := assert.AnError
	err = c.Sync(t.Context(), nil, func(nodeapi.Update) error { return stop })
	assert.ErrorIs(t, err, stop)

	// The server ending the stream is an error the caller retries on.
	f.updates = nil
	err = c.Sync(t.Context(), nil, func(nodeapi.Update) error { return nil })
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.False(t, nodeapi.IsRefused(err))
	assert.False(t, nodeapi.IsRefused(assert.AnError))

	_, err = c.SignJWTSVID(t.Context(), "a", []string{"x"})
	assert.Equal(t, codes.Unimplemented, status.Code(err))

	// A WIT-SVID must not be empty.
	_, err = c.SignWITSVID(t.Context(), "a", newKey(t).Public(), "")
	assert.ErrorContains(t, err, "nodeapi: the server returned an empty WIT-SVID")
	_, err = c.SignWITSVID(t.Context(), "old", newKey(t).Public(), "")
	assert.ErrorIs(t, err, nodeapi.ErrNoWITSVIDs)
	assert.Equal(t, codes.Unimplemented, status.Code(err))
	_, err = c.SignWITSVID(t.Context(), "a", "not a key", "")
	assert.ErrorContains(t, err, "nodeapi: encoding the WIT-SVID key")
}

func TestClientConfigValidation(t *testing.T) {
	ok := nodeapi.ClientConfig{Servers: []string{"127.0.0.1:1"}, TrustDomain: td, Bundle: testca.New(t, td).X509Bundle()}
	src := &agent{}
	for _, tt := range []struct {
		name string
		mod  func(*nodeapi.ClientConfig)
		want string
	}{
		{"no servers", func(c *nodeapi.ClientConfig) { c.Servers = nil }, "Servers"},
		{"no trust domain", func(c *nodeapi.ClientConfig) { c.TrustDomain = spiffeid.TrustDomain{} }, "TrustDomain"},
		{"no bundle", func(c *nodeapi.ClientConfig) { c.Bundle = nil }, "Bundle is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mod(&cfg)
			_, err := nodeapi.Dial(cfg, src)
			assert.ErrorContains(t, err, tt.want)
			_, err = nodeapi.Attest(t.Context(), cfg, nodeName, newKey(t))
			assert.ErrorContains(t, err, tt.want)
		})
	}
	_, err := nodeapi.Dial(ok, nil)
	assert.ErrorContains(t, err, "SVID source")
}
