package nodeserver_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func withJoinToken(t testing.TB) func(*nodeserver.Config) {
	return func(cfg *nodeserver.Config) {
		jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: cfg.Agents.(*memstore.Store)})
		require.NoError(t, err)
		cfg.Attestors = append(cfg.Attestors, jt)
	}
}

// Property: a join token admits one node once; presenting it again (a
// replay by whoever saw it) is refused for good.
func TestJoinTokenReplayIsRefused(t *testing.T) {
	e := newEnv(t, withJoinToken(t))
	tok, _, err := jointoken.Generate(t.Context(), e.store, jointoken.Params{})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	svid, err := nodeapi.Attest(ctx, e.clientConfig(), jointoken.NewClient(tok), newKey(t))
	require.NoError(t, err)
	assert.Contains(t, svid.ID.Path(), "/spiffekit/agent/join_token/")

	_, err = nodeapi.Attest(ctx, e.clientConfig(), jointoken.NewClient(tok), newKey(t))
	require.Error(t, err)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.True(t, nodeapi.IsRefused(err))

	// A token never issued is refused the same way.
	unknown, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	_, err = nodeapi.Attest(ctx, e.clientConfig(), jointoken.NewClient(unknown), newKey(t))
	assert.True(t, nodeapi.IsRefused(err), "%v", err)
}

// recordingClient answers challenges with an x509pop client and keeps the
// last answer; replaying sends that answer to whatever challenge comes.
type recordingClient struct {
	*x509pop.Client
	mu     sync.Mutex
	answer []byte
	replay bool
}

func (r *recordingClient) Respond(ctx context.Context, ch []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.replay {
		return r.answer, nil
	}
	a, err := r.Client.Respond(ctx, ch)
	r.answer = a
	return a, err
}

func newX509PopNode(t testing.TB, nodeCA *testca.CA) *x509pop.Client {
	t.Helper()
	chain, key := nodeCA.NewLeaf(t, spiffeid.ID{})
	c, err := x509pop.NewClient(x509pop.ClientConfig{TrustDomain: td, Certificates: chain, Key: key})
	require.NoError(t, err)
	return c
}

func withX509Pop(t testing.TB, nodeCA *testca.CA) func(*nodeserver.Config) {
	return func(cfg *nodeserver.Config) {
		srv, err := x509pop.NewServer(x509pop.ServerConfig{Roots: []*x509.Certificate{nodeCA.Root()}})
		require.NoError(t, err)
		cfg.Attestors = append(cfg.Attestors, srv)
	}
}

// Property: an x509pop proof is bound to a fresh nonce; the answer to one
// challenge, replayed in a later attestation, is refused. The node itself
// may re-attest, and keeps its agent ID.
func TestX509PopResponseReplayIsRefused(t *testing.T) {
	nodeCA := testca.New(t, spiffeid.RequireTrustDomainFromString("nodes.test"))
	e := newEnv(t, withX509Pop(t, nodeCA))
	rc := &recordingClient{Client: newX509PopNode(t, nodeCA)}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	first, err := nodeapi.Attest(ctx, e.clientConfig(), rc, newKey(t))
	require.NoError(t, err)
	require.NotEmpty(t, rc.answer)

	rc.replay = true
	_, err = nodeapi.Attest(ctx, e.clientConfig(), rc, newKey(t))
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	rc.replay = false
	again, err := nodeapi.Attest(ctx, e.clientConfig(), rc, newKey(t))
	require.NoError(t, err)
	assert.Equal(t, first.ID, again.ID)
	rec, err := e.store.GetAgent(t.Context(), again.ID)
	require.NoError(t, err)
	assert.True(t, rec.CanReattest)
	assert.Equal(t, again.Certificates[0].SerialNumber.Text(16), rec.SerialNumber)
}

// Property (X509 rule 1, one URI SAN): the server signs a CSR only for the
// entry's own SPIFFE ID, only with a valid signature proving possession of
// the key, and takes DNS names from the entry, never from the CSR.
func TestSignX509SVIDsRefusesBadCSRs(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	key := newKey(t)

	twoURIs, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{mine.SPIFFEID.URL(), spiffeid.RequireFromPath(td, "/admin").URL()},
	}, key)
	require.NoError(t, err)
	good, err := nodeapi.NewCSR(key, mine.SPIFFEID)
	require.NoError(t, err)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-3] ^= 0xff // inside the signature
	noURI, err := nodeapi.NewCSR(key, spiffeid.ID{})
	require.NoError(t, err)
	dnsCSR, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{mine.SPIFFEID.URL()}, DNSNames: []string{"evil.example"},
	}, key)
	require.NoError(t, err)
	// A CSR signed by another key than the one it names.
	otherKey := newKey(t)
	forged := forgeCSR(t, key, otherKey, mine.SPIFFEID)

	res, err := a.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{
		{EntryID: mine.ID, CSR: twoURIs},
		{EntryID: mine.ID, CSR: flipped},
		{EntryID: mine.ID, CSR: nil},
		{EntryID: mine.ID, CSR: make([]byte, nodeapi.MaxCSRSize+1)},
		{EntryID: mine.ID, CSR: noURI},
		{EntryID: mine.ID, CSR: dnsCSR},
		{EntryID: mine.ID, CSR: forged},
	})
	require.NoError(t, err)
	require.Len(t, res, 7)
	assert.ErrorContains(t, res[0].Err, "2 URI SANs")
	assert.ErrorContains(t, res[1].Err, "signature")
	assert.ErrorContains(t, res[2].Err, "CSR of 1 to")
	assert.ErrorContains(t, res[3].Err, "CSR of 1 to")
	for i := 4; i <= 5; i++ {
		require.NoError(t, res[i].Err, "row %d", i)
		id, _, err := x509svid.Verify(res[i].Certificates, e.ca.Bundle())
		require.NoError(t, err)
		assert.Equal(t, mine.SPIFFEID, id, "row %d: the entry's ID, whatever the CSR names", i)
		assert.Empty(t, res[i].Certificates[0].DNSNames, "row %d: DNS names come from the entry only", i)
	}
	assert.ErrorContains(t, res[6].Err, "signature")
}

// forgeCSR returns a CSR for pub's key (of named) but signed by signer: its
// signature does not verify with the key it carries.
func forgeCSR(t testing.TB, named, signer crypto.Signer, id spiffeid.ID) []byte {
	t.Helper()
	a, err := nodeapi.NewCSR(named, id)
	require.NoError(t, err)
	b, err := nodeapi.NewCSR(signer, id)
	require.NoError(t, err)
	ca, err := x509.ParseCertificateRequest(a)
	require.NoError(t, err)
	cb, err := x509.ParseCertificateRequest(b)
	require.NoError(t, err)
	// Same structure, different keys: splice a's TBS (naming a's key) with
	// b's signature.
	i := bytes.Index(a, ca.RawTBSCertificateRequest)
	j := bytes.Index(b, cb.RawTBSCertificateRequest)
	require.GreaterOrEqual(t, i, 0)
	require.GreaterOrEqual(t, j, 0)
	tailB := b[j+len(cb.RawTBSCertificateRequest):]
	out := append(bytes.Clone(a[:i+len(ca.RawTBSCertificateRequest)]), tailB...)
	// Fix the outer SEQUENCE length when the signatures differ in size.
	parsed, err := x509.ParseCertificateRequest(out)
	if err != nil {
		// Rebuild the outer header for the new content length.
		content := out[i:]
		out = append(derSeqHeader(len(content)), content...)
		parsed, err = x509.ParseCertificateRequest(out)
		require.NoError(t, err)
	}
	require.Error(t, parsed.CheckSignature())
	return out
}

func derSeqHeader(n int) []byte {
	switch {
	case n < 0x80:
		return []byte{0x30, byte(n)}
	case n < 0x100:
		return []byte{0x30, 0x81, byte(n)}
	default:
		return []byte{0x30, 0x82, byte(n >> 8), byte(n)}
	}
}

// Property: a batch larger than MaxBatch is refused whole, before any
// signing; the client splits larger lists into calls the server accepts.
func TestBatchOverMaxBatchIsRefusedWhole(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	mine := e.entry(t, a.svid.ID, "/web")
	csr, err := nodeapi.NewCSR(newKey(t), mine.SPIFFEID)
	require.NoError(t, err)

	raw := e.rawClient(t, a)
	reqs := make([]*nodepb.X509SVIDRequest, nodeapi.MaxBatch+1)
	for i := range reqs {
		reqs[i] = &nodepb.X509SVIDRequest{EntryId: mine.ID, Csr: csr}
	}
	_, err = raw.SignX509SVIDs(t.Context(), &nodepb.SignX509SVIDsRequest{Requests: reqs})
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	// Empty requests in a batch are answered one by one, not fatal.
	resp, err := raw.SignX509SVIDs(t.Context(), &nodepb.SignX509SVIDsRequest{Requests: []*nodepb.X509SVIDRequest{nil, {EntryId: mine.ID, Csr: csr}}})
	require.NoError(t, err)
	require.Len(t, resp.Results, 2)
	assert.Contains(t, resp.Results[0].Error, "not authorized") // a nil element arrives empty
	assert.Empty(t, resp.Results[1].Error)

	// An empty batch is fine.
	resp, err = raw.SignX509SVIDs(t.Context(), &nodepb.SignX509SVIDsRequest{})
	require.NoError(t, err)
	assert.Empty(t, resp.Results)

	// The client splits MaxBatch+3 requests (for an unknown entry: cheap
	// refusals) into two calls and answers each.
	many := make([]nodeapi.X509SVIDRequest, nodeapi.MaxBatch+3)
	for i := range many {
		many[i] = nodeapi.X509SVIDRequest{EntryID: "unknown", CSR: csr}
	}
	many[len(many)-1] = nodeapi.X509SVIDRequest{EntryID: mine.ID, CSR: csr}
	res, err := a.client.SignX509SVIDs(t.Context(), many)
	require.NoError(t, err)
	require.Len(t, res, len(many))
	assert.ErrorContains(t, res[0].Err, "not authorized")
	require.NoError(t, res[len(res)-1].Err)
}

// Property: concurrent batches from several agents each get chains for
// their own keys and entries (run with -race).
func TestSignX509SVIDsConcurrently(t *testing.T) {
	e := newEnv(t, nil)
	type job struct {
		a     *agent
		entry registry.Entry
	}
	var jobs []job
	for _, n := range []string{"node1", "node2", "node3"} {
		a := e.attest(t, n)
		jobs = append(jobs, job{a, e.entry(t, a.svid.ID, "/w/"+n)})
	}
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range 6 {
		j := jobs[g%len(jobs)]
		wg.Go(func() {
			keys := make([]crypto.Signer, 8)
			reqs := make([]nodeapi.X509SVIDRequest, len(keys))
			for i := range keys {
				keys[i] = newKey(t)
				csr, err := nodeapi.NewCSR(keys[i], j.entry.SPIFFEID)
				if err != nil {
					failures.Add(1)
					return
				}
				reqs[i] = nodeapi.X509SVIDRequest{EntryID: j.entry.ID, CSR: csr}
			}
			res, err := j.a.client.SignX509SVIDs(t.Context(), reqs)
			if err != nil || len(res) != len(reqs) {
				failures.Add(1)
				return
			}
			for i, r := range res {
				if r.Err != nil || !keys[i].Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(r.Certificates[0].PublicKey) {
					failures.Add(1)
					continue
				}
				if id, _, err := x509svid.Verify(r.Certificates, e.ca.Bundle()); err != nil || id != j.entry.SPIFFEID {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, failures.Load())
}

// Property: a ban takes an open entry stream away, and the banned agent's
// later calls are refused.
func TestBannedAgentLosesItsStream(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates, end := syncUpdates(t, a)
	next(t, updates)

	rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
	require.NoError(t, err)
	rec.Banned = true
	_, err = e.store.PutAgent(t.Context(), rec) // the store tells the server
	require.NoError(t, err)

	err = end(t)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "banned")
	_, err = a.client.RenewAgent(t.Context(), newKey(t))
	assert.True(t, nodeapi.IsRefused(err), "%v", err)
	assert.ErrorContains(t, err, "banned")
}

// Property: an entry stream ends as soon as the SVID it was opened with is
// superseded: once the agent used its renewed SVID (retiring the one
// before), or attested again. It ends with Aborted, which the agent takes
// as a cue to reconnect with its current SVID, not as a refusal that sends
// it to attest again; a reconnection with the superseded SVID is refused.
func TestSupersededAgentSVIDLosesItsStream(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates, end := syncUpdates(t, a)
	next(t, updates)

	key := newKey(t)
	renewed, err := a.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)
	cur := &agent{key: key, svid: renewed}
	cur.client, err = nodeapi.Dial(e.clientConfig(), cur)
	require.NoError(t, err)
	defer cur.client.Close()
	_, err = cur.client.SignJWTSVID(t.Context(), "x", []string{"db"}) // retires the first SVID
	require.ErrorContains(t, err, "not authorized")

	err = end(t)
	assert.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "superseded")
	assert.False(t, nodeapi.IsRefused(err), "%v", err)
	err = a.client.Sync(t.Context(), nil, func(nodeapi.Update) error { return nil })
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "no longer current")

	// Attested again, from elsewhere: no grace for the SVID before.
	updates, end = syncUpdates(t, cur)
	next(t, updates)
	_, err = nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
	require.NoError(t, err)
	err = end(t)
	assert.Equal(t, codes.Aborted, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "superseded")
}

// Property: an agent SVID past its NotAfter (on the server's clock)
// authenticates nothing, and an open stream of such an agent ends.
func TestExpiredAgentSVIDIsRefused(t *testing.T) {
	var skew atomic.Int64
	e := newEnv(t, func(cfg *nodeserver.Config) {
		cfg.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		cfg.AgentSVIDTTL = time.Minute
	})
	a := e.attest(t, "node1")
	e.entry(t, a.svid.ID, "/web")
	updates, end := syncUpdates(t, a)
	next(t, updates)

	skew.Store(int64(2 * time.Minute))
	e.entry(t, a.svid.ID, "/wake") // a change wakes the stream
	err := end(t)
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "expired")

	for name, call := range map[string]func() error{
		"renew": func() error { _, err := a.client.RenewAgent(t.Context(), newKey(t)); return err },
		"jwt":   func() error { _, err := a.client.SignJWTSVID(t.Context(), "x", []string{"db"}); return err },
		"sync": func() error {
			return a.client.Sync(t.Context(), nil, func(nodeapi.Update) error { return nil })
		},
	} {
		err := call()
		assert.Equal(t, codes.Unauthenticated, status.Code(err), "%s: %v", name, err)
		assert.True(t, nodeapi.IsRefused(err), name)
	}
}

// Property: calls other than Attest need a client certificate that is an
// SVID of the trust domain and belongs to an attested agent.
func TestCallsNeedAnAttestedAgent(t *testing.T) {
	e := newEnv(t, nil)
	raw := e.rawClient(t, &agent{key: newKey(t), svid: &nodeapi.AgentSVID{}})
	_, err := raw.SignJWTSVID(t.Context(), &nodepb.SignJWTSVIDRequest{EntryId: "x"})
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)

	// An SVID of the trust domain that the CA signed but no attestation
	// recorded (for instance a workload's) is not an agent.
	key := newKey(t)
	chain, err := e.ca.SignX509SVID(t.Context(), caParams(key, spiffeid.RequireFromPath(td, "/workload")))
	require.NoError(t, err)
	w := &agent{key: key, svid: &nodeapi.AgentSVID{ID: spiffeid.RequireFromPath(td, "/workload"), Certificates: chain}}
	_, err = e.rawClient(t, w).SignJWTSVID(t.Context(), &nodepb.SignJWTSVIDRequest{EntryId: "x"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "not attested")
}

// Property: Serve returns promptly when its ctx ends, even with an entry
// stream open, and the stream's client sees it end.
func TestServeReturnsWithOpenStream(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	updates, end := syncUpdates(t, a)
	next(t, updates)
	e.cancel()
	err := end(t)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Equal(t, "nodeserver: the server is shutting down", status.Convert(err).Message())
	assert.False(t, nodeapi.IsRefused(err), "a draining server is not a refusal: %v", err)
}

func TestNewServerValidation(t *testing.T) {
	e := newEnv(t, nil)
	base := nodeserver.Config{Authority: e.ca, Registry: e.store, Agents: e.store, Attestors: []attest.NodeAttestor{echoAttestor{}}}
	for _, tt := range []struct {
		name string
		mod  func(*nodeserver.Config)
		want string
	}{
		{"no authority", func(c *nodeserver.Config) { c.Authority = nil }, "nodeserver: Config.Authority is required"},
		{"no registry", func(c *nodeserver.Config) { c.Registry = nil }, "nodeserver: Config.Registry is required"},
		{"no agents", func(c *nodeserver.Config) { c.Agents = nil }, "nodeserver: Config.Agents is required"},
		{"no attestor", func(c *nodeserver.Config) { c.Attestors = nil }, "nodeserver: Config.Attestors needs at least one node attestor"},
		{"nil attestor", func(c *nodeserver.Config) { c.Attestors = []attest.NodeAttestor{nil} }, "nodeserver: a node attestor is nil or has no type"},
		{"two of a type", func(c *nodeserver.Config) { c.Attestors = []attest.NodeAttestor{echoAttestor{}, echoAttestor{}} }, `nodeserver: two node attestors of type "echo"`},
		{"negative TTL", func(c *nodeserver.Config) { c.AgentSVIDTTL = -1 }, "nodeserver: durations must not be negative"},
		{"negative poll", func(c *nodeserver.Config) { c.PollInterval = -time.Second }, "nodeserver: durations must not be negative"},
		{"negative timeout", func(c *nodeserver.Config) { c.AttestTimeout = -time.Second }, "nodeserver: durations must not be negative"},
		{"negative handshake wait", func(c *nodeserver.Config) { c.HandshakeWait = -time.Second }, "nodeserver: durations must not be negative"},
		{"negative handshakes", func(c *nodeserver.Config) { c.MaxHandshakes = -1 }, "nodeserver: Config.MaxHandshakes must not be negative"},
		{"no bundle", func(c *nodeserver.Config) { c.Authority = noBundle{e.ca} }, "nodeserver: the authority has no bundle"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			_, err := nodeserver.New(t.Context(), cfg)
			require.EqualError(t, err, tt.want)
		})
	}
	srv, err := nodeserver.New(t.Context(), base)
	require.NoError(t, err)
	assert.Equal(t, td, srv.TrustDomain())
	assert.Equal(t, spiffeid.RequireFromPath(td, nodeapi.ServerPath), srv.ID())
	assert.NotNil(t, srv.Index())
	require.NoError(t, srv.Close())
	require.NoError(t, srv.Close(), "Close is idempotent")
}

// noBundle is an authority that lost its bundle.
type noBundle struct{ ca.Authority }

func (noBundle) Bundle() *spiffebundle.Bundle { return nil }

func caParams(key crypto.Signer, id spiffeid.ID) ca.X509SVIDParams {
	return ca.X509SVIDParams{PublicKey: key.Public(), ID: id}
}

// Property: an entry stream opened while the server stops ends with
// Unavailable before any answer, so that an agent cannot take a server
// that is going away for one that is back. The Server is closed while the
// gRPC server it made (GRPCServer, which the caller stops) still takes
// calls.
func TestSyncOpenedWhileStoppingSendsNothing(t *testing.T) {
	e := newEnv(t, nil)
	a := e.attest(t, "node1")
	gs := e.srv.GRPCServer()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	t.Cleanup(func() {
		gs.Stop()
		require.NoError(t, <-served)
	})
	require.NoError(t, e.srv.Close())

	e.addr = lis.Addr().String()
	stream, err := e.rawClient(t, a).Sync(t.Context(), &nodepb.SyncRequest{})
	require.NoError(t, err)
	resp, err := stream.Recv()
	require.Error(t, err, "no answer, not even the first: got %v", resp)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Equal(t, "nodeserver: the server is shutting down", status.Convert(err).Message())
}
