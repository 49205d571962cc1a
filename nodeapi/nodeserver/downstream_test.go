package nodeserver_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// keysRecorder keeps what downstream servers publish.
type keysRecorder struct {
	mu   sync.Mutex
	keys map[spiffeid.ID]map[string]crypto.PublicKey
}

func (r *keysRecorder) PutDownstreamJWTKeys(_ context.Context, id spiffeid.ID, keys map[string]crypto.PublicKey) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keys == nil {
		r.keys = map[spiffeid.ID]map[string]crypto.PublicKey{}
	}
	r.keys[id] = keys
	return nil
}

// workload returns a caller presenting an X509-SVID of path signed by the
// server's CA, as a workload of an agent would hold.
func (e *env) workload(t *testing.T, path string) *agent {
	t.Helper()
	key := newKey(t)
	id := spiffeid.RequireFromPath(td, path)
	chain, err := e.ca.SignX509SVID(t.Context(), ca.X509SVIDParams{ID: id, PublicKey: key.Public()})
	require.NoError(t, err)
	return &agent{key: key, svid: &nodeapi.AgentSVID{ID: id, Certificates: chain}}
}

func caCSR(t *testing.T, uris ...string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		p, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, newKey(t))
	require.NoError(t, err)
	return der
}

// TestMintX509CA checks who may have a CA signed and what is signed.
func TestMintX509CA(t *testing.T) {
	rec := &keysRecorder{}
	obs := newRecorder()
	e := newEnv(t, func(c *nodeserver.Config) { c.Downstream = rec; c.Observer = obs })
	a := e.attest(t, "node1")
	obs.await(t, 3) // the attestation
	sels := []attest.Selector{{Type: "unix", Value: "uid:1"}}
	_, err := e.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/regional"), ParentID: a.svid.ID, Selectors: sels, Downstream: true})
	require.NoError(t, err)
	_, err = e.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/plain"), ParentID: a.svid.ID, Selectors: sels})
	require.NoError(t, err)
	_, err = e.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/ended"), ParentID: a.svid.ID, Selectors: sels,
		Downstream: true, ExpiresAt: time.Now().Add(-time.Hour).Truncate(time.Second)})
	require.NoError(t, err)
	down := e.rawClient(t, e.workload(t, "/regional"))
	td := td.IDString()

	resp, err := down.MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: caCSR(t, td), TtlSeconds: 1 << 62})
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(resp.CertChain[0])
	require.NoError(t, err)
	assert.True(t, cert.IsCA)
	assert.Equal(t, td, cert.URIs[0].String())
	assert.False(t, cert.NotAfter.After(e.ca.X509Authority().Certificate().NotAfter), "capped at the server's CA")
	require.Len(t, resp.Roots, 1)
	assert.Equal(t, e.ca.X509Authority().Certificate().Raw, resp.Roots[0])
	assert.Equal(t, []string{"signed x509_ca ok", "rpc MintX509CA OK"}, obs.await(t, 2), "the CA's signing, and the call")

	for name, c := range map[string]nodepb.NodeClient{
		"entry not downstream": e.rawClient(t, e.workload(t, "/plain")),
		"entry expired":        e.rawClient(t, e.workload(t, "/ended")),
		"no entry":             e.rawClient(t, e.workload(t, "/other")),
		"an agent":             e.rawClient(t, a),
	} {
		_, err := c.MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: caCSR(t, td)})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", name, err)
		_, err = c.PublishJWTKeys(t.Context(), &nodepb.PublishJWTKeysRequest{})
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", name, err)
	}
	for name, req := range map[string]*nodepb.MintX509CARequest{
		"another trust domain": {Csr: caCSR(t, "spiffe://other.org")},
		"a path":               {Csr: caCSR(t, td+"/x")},
		"not a CSR":            {Csr: []byte{1}},
		"too large":            {Csr: make([]byte, nodeapi.MaxCSRSize+1)},
		"negative TTL":         {Csr: caCSR(t, td), TtlSeconds: -1},
	} {
		_, err := down.MintX509CA(t.Context(), req)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}
}

// TestPublishJWTKeys checks what a downstream server may publish.
func TestPublishJWTKeys(t *testing.T) {
	rec := &keysRecorder{}
	e := newEnv(t, func(c *nodeserver.Config) { c.Downstream = rec })
	a := e.attest(t, "node1")
	id := spiffeid.RequireFromPath(td, "/regional")
	_, err := e.store.Create(t.Context(), registry.Entry{SPIFFEID: id, ParentID: a.svid.ID,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}, Downstream: true})
	require.NoError(t, err)
	down := e.rawClient(t, e.workload(t, "/regional"))
	der, err := x509.MarshalPKIXPublicKey(newKey(t).Public())
	require.NoError(t, err)

	resp, err := down.PublishJWTKeys(t.Context(), &nodepb.PublishJWTKeysRequest{Keys: []*nodepb.JWTKey{{KeyId: "k1", PublicKey: der}}})
	require.NoError(t, err)
	assert.Contains(t, string(resp.Bundle), `"keys"`)
	rec.mu.Lock()
	assert.Len(t, rec.keys[id], 1)
	assert.NotNil(t, rec.keys[id]["k1"])
	rec.mu.Unlock()

	many := make([]*nodepb.JWTKey, 65)
	for i := range many {
		many[i] = &nodepb.JWTKey{KeyId: strings.Repeat("k", i+1), PublicKey: der}
	}
	for name, keys := range map[string][]*nodepb.JWTKey{
		"no key ID":   {{PublicKey: der}},
		"long key ID": {{KeyId: strings.Repeat("k", 257), PublicKey: der}},
		"twice":       {{KeyId: "a", PublicKey: der}, {KeyId: "a", PublicKey: der}},
		"not a key":   {{KeyId: "a", PublicKey: []byte{1}}},
		"too many":    many,
	} {
		_, err := down.PublishJWTKeys(t.Context(), &nodepb.PublishJWTKeysRequest{Keys: keys})
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}

	// A server that keeps no downstream keys says so.
	e2 := newEnv(t, nil)
	a2 := e2.attest(t, "node1")
	_, err = e2.store.Create(t.Context(), registry.Entry{SPIFFEID: id, ParentID: a2.svid.ID,
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}, Downstream: true})
	require.NoError(t, err)
	_, err = e2.rawClient(t, e2.workload(t, "/regional")).PublishJWTKeys(t.Context(), &nodepb.PublishJWTKeysRequest{})
	assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
}
