package nodeserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// echoAttestor is a node attestor for tests of the protocol: the payload
// names the node, and the node proves it is alive by answering a random
// challenge with the challenge followed by its name. Nodes named "bad"
// are rejected.
type echoAttestor struct{}

func (echoAttestor) Type() string { return "echo" }

func (echoAttestor) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	name := string(payload)
	if name == "bad" || name == "" || strings.ContainsAny(name, "/:") {
		return attest.NodeResult{}, fmt.Errorf("%w: node %q", attest.ErrNodeRejected, name)
	}
	nonce := make([]byte, 16)
	rand.Read(nonce)
	resp, err := challenge(ctx, nonce)
	if err != nil {
		return attest.NodeResult{}, err
	}
	if !bytes.Equal(resp, append(nonce, payload...)) {
		return attest.NodeResult{}, fmt.Errorf("%w: wrong answer", attest.ErrNodeRejected)
	}
	id, err := spiffeid.FromSegments(td, "spiffekit", "agent", "echo", name)
	if err != nil {
		return attest.NodeResult{}, err
	}
	return attest.NodeResult{
		AgentID:     id,
		Selectors:   attest.NewSelectors(attest.Selector{Type: "echo", Value: "name:" + name}),
		CanReattest: true,
	}, nil
}

type echoClient struct{ name string }

func (echoClient) Type() string                              { return "echo" }
func (c echoClient) Payload(context.Context) ([]byte, error) { return []byte(c.name), nil }
func (c echoClient) Respond(_ context.Context, ch []byte) ([]byte, error) {
	return append(bytes.Clone(ch), c.name...), nil
}

// env is an issuing server on loopback.
type env struct {
	ca     *rotation.Manager
	auth   ca.Authority // the server's: ca unless the test replaced it
	store  *memstore.Store
	srv    *nodeserver.Server
	addr   string
	cancel context.CancelFunc
}

func newEnv(t testing.TB, mod func(*nodeserver.Config)) *env {
	t.Helper()
	// Registered first, so checked last: after the server, its clients
	// and every other server of the test have stopped.
	t.Cleanup(leaktest.Check(t))
	ctx := t.Context()
	m, err := rotation.New(ctx, rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	cfg := nodeserver.Config{
		Authority: m,
		Registry:  store,
		Agents:    store,
		Attestors: []attest.NodeAttestor{echoAttestor{}},
	}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := nodeserver.New(ctx, cfg)
	require.NoError(t, err)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	cancel := serve(t, srv, lis)
	return &env{ca: m, auth: cfg.Authority, store: store, srv: srv, addr: lis.Addr().String(), cancel: cancel}
}

// serve runs srv (Run and Serve on lis) until the test ends or the
// returned function is called, which stops Serve; Run stops with the test.
// Both must then return as documented.
func serve(t testing.TB, srv *nodeserver.Server, lis net.Listener) (stopServe context.CancelFunc) {
	t.Helper()
	sctx, stopServe := context.WithCancel(context.Background())
	rctx, stopRun := context.WithCancel(context.Background())
	served, ran := make(chan error, 1), make(chan error, 1)
	go func() { served <- srv.Serve(sctx, lis) }()
	go func() { ran <- srv.Run(rctx) }()
	t.Cleanup(func() {
		stopServe()
		stopRun()
		require.NoError(t, <-served)
		if err := <-ran; err != nil { // nil if the test closed srv
			require.ErrorIs(t, err, context.Canceled)
		}
		require.NoError(t, srv.Close())
	})
	return stopServe
}

func (e *env) clientConfig() nodeapi.ClientConfig {
	return nodeapi.ClientConfig{Servers: []string{e.addr}, TrustDomain: td, Bundle: e.auth.Bundle()}
}

// agent is an attested agent with a connected client.
type agent struct {
	key    crypto.Signer
	svid   *nodeapi.AgentSVID
	client *nodeapi.Client
}

func (a *agent) GetX509SVID() (*x509svid.SVID, error) {
	return &x509svid.SVID{ID: a.svid.ID, Certificates: a.svid.Certificates, PrivateKey: a.key}, nil
}

func newKey(t testing.TB) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return k
}

func (e *env) attest(t testing.TB, name string) *agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	key := newKey(t)
	svid, err := nodeapi.Attest(ctx, e.clientConfig(), echoClient{name}, key)
	require.NoError(t, err)
	a := &agent{key: key, svid: svid}
	a.client, err = nodeapi.Dial(e.clientConfig(), a)
	require.NoError(t, err)
	t.Cleanup(func() { a.client.Close() })
	return a
}

func (e *env) entry(t testing.TB, parent spiffeid.ID, path string, sels ...attest.Selector) registry.Entry {
	t.Helper()
	if len(sels) == 0 {
		sels = []attest.Selector{{Type: "unix", Value: "uid:1000"}}
	}
	en, err := e.store.Create(t.Context(), registry.Entry{
		SPIFFEID:  spiffeid.RequireFromPath(td, path),
		ParentID:  parent,
		Selectors: sels,
	})
	require.NoError(t, err)
	waitIndexed(t, e.srv, e.store)
	return en
}

// waitIndexed waits until srv's index holds every write made to store so
// far: Run reads the change feed when the store tells of a write.
func waitIndexed(t testing.TB, srv *nodeserver.Server, store registry.Store) {
	t.Helper()
	head, err := store.Head(t.Context())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return srv.Index().Seq() >= head }, 10*time.Second, time.Millisecond,
		"the server reads the change feed up to %d", head)
}

// liveBundle verifies servers with the CA's current bundle, as an agent
// following its sync does, so that a CA rotation does not lock the test
// client out.
type liveBundle struct{ m *rotation.Manager }

func (l liveBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return l.m.Bundle().X509Bundle(), nil
}

// rawClient is a node protocol client that presents a's SVID without the
// checks and batching of nodeapi.Client, to send what a hostile agent would.
func (e *env) rawClient(t testing.TB, a *agent) nodepb.NodeClient {
	t.Helper()
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // the test's own server
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			chain := make([][]byte, len(a.svid.Certificates))
			for i, c := range a.svid.Certificates {
				chain[i] = c.Raw
			}
			return &tls.Certificate{Certificate: chain, PrivateKey: a.key}, nil
		},
	}
	cc, err := grpc.NewClient("passthrough:///"+e.addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	require.NoError(t, err)
	t.Cleanup(func() { cc.Close() })
	return nodepb.NewNodeClient(cc)
}

// syncUpdates opens the entry stream of a and returns its updates and a
// function that waits (boundedly) for Sync's result. The stream ends with
// the test.
func syncUpdates(t *testing.T, a *agent) (<-chan nodeapi.Update, func(t *testing.T) error) {
	t.Helper()
	updates := make(chan nodeapi.Update, 16)
	done := make(chan struct{})
	var result error
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		defer close(done)
		result = a.client.Sync(ctx, nil, func(u nodeapi.Update) error {
			select {
			case updates <- u:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return updates, func(t *testing.T) error {
		t.Helper()
		select {
		case <-done:
			return result
		case <-time.After(10 * time.Second):
			t.Fatal("the entry stream stayed open")
		}
		return nil
	}
}
