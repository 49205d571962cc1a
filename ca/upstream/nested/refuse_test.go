//go:build !windows

package nested_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/upstream/nested"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// newCSR returns a CA request for a new key, naming uris.
func newCSR(t testing.TB, uris ...string) ca.X509CARequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		parsed, err := url.Parse(u)
		require.NoError(t, err)
		tmpl.URIs = append(tmpl.URIs, parsed)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	require.NoError(t, err)
	return ca.X509CARequest{CSR: der, PublicKey: key.Public(), TrustDomain: td, TTL: time.Hour}
}

// rawClient returns a node API client on l's server presenting the
// default SVID of src, so that a test sends requests the Authority would
// not.
func rawClient(t *testing.T, l level, src *workloadapi.X509Source) nodepb.NodeClient {
	t.Helper()
	serverID := spiffeid.RequireFromPath(td, nodeapi.ServerPath)
	tc := tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(serverID))
	tc.MinVersion = tls.VersionTLS13
	conn, err := grpc.NewClient("passthrough:///"+l.server.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return nodepb.NewNodeClient(conn)
}

// TestRefusals checks what the upstream server refuses: the SVID of an
// entry that is not downstream, a downstream entry deleted since, a CSR
// naming another trust domain or a path, a malformed CSR, and that a
// longer TTL than the server's CA has left is capped.
func TestRefusals(t *testing.T) {
	root := startLevel(t, nil, server.Config{CATTL: 24 * time.Hour})
	down := root.createEntry(t, "/regional", true)
	plain := root.createEntry(t, "/plain", false)

	upFor := func(id spiffeid.ID) *nested.Authority {
		src := root.source(t, id)
		up, err := nested.New(nested.Config{ServerAddress: root.server.Addr().String(), TrustDomain: td, SVIDSource: src, BundleSource: src})
		require.NoError(t, err)
		t.Cleanup(func() { up.Close() })
		return up
	}

	t.Run("entry not downstream", func(t *testing.T) {
		_, err := upFor(plain.SPIFFEID).MintX509CA(t.Context(), newCSR(t, td.IDString()))
		require.Error(t, err)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		assert.ErrorContains(t, err, "no downstream entry")
	})

	up := upFor(down.SPIFFEID)
	t.Run("TTL capped at the server's CA", func(t *testing.T) {
		req := newCSR(t, td.IDString())
		req.TTL = 100 * 365 * 24 * time.Hour
		resp, err := up.MintX509CA(t.Context(), req)
		require.NoError(t, err)
		rootCA := root.server.CA().X509Authority().Certificate()
		assert.False(t, resp.Chain[0].NotAfter.After(rootCA.NotAfter), "%v after %v", resp.Chain[0].NotAfter, rootCA.NotAfter)
		assert.True(t, resp.Chain[0].IsCA)
		assert.Equal(t, []*url.URL{td.ID().URL()}, resp.Chain[0].URIs)
	})

	src := root.source(t, down.SPIFFEID)
	raw := rawClient(t, root, src)
	for _, tc := range []struct {
		name string
		csr  []byte
		ttl  int64
		want string
	}{
		{"another trust domain", newCSR(t, "spiffe://other.org").CSR, 0, `names "spiffe://other.org"`},
		{"a path", newCSR(t, td.IDString()+"/workload").CSR, 0, "names"},
		{"two URIs", newCSR(t, td.IDString(), "spiffe://other.org").CSR, 0, "other.org"},
		{"not a CSR", []byte("nope"), 0, "invalid CSR"},
		{"too large", make([]byte, nodeapi.MaxCSRSize+1), 0, "larger than"},
		{"negative TTL", newCSR(t, td.IDString()).CSR, -1, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := raw.MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: tc.csr, TtlSeconds: tc.ttl})
			require.Error(t, err)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	t.Run("bad signature", func(t *testing.T) {
		req := newCSR(t, td.IDString())
		req.CSR[len(req.CSR)-3] ^= 0xff
		_, err := raw.MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: req.CSR})
		require.Error(t, err)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	})

	t.Run("entry deleted", func(t *testing.T) {
		_, err := root.server.Admin.DeleteEntry(t.Context(), down.ID, down.Revision)
		require.NoError(t, err)
		_, err = raw.MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: newCSR(t, td.IDString()).CSR})
		require.Error(t, err)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	})
}

// TestNoClientCertificate checks that a caller without an SVID is refused.
func TestNoClientCertificate(t *testing.T) {
	root := startLevel(t, nil, server.Config{})
	tc := tlsconfig.TLSClientConfig(root.server.Bundle().X509Bundle(), tlsconfig.AuthorizeID(spiffeid.RequireFromPath(td, nodeapi.ServerPath)))
	conn, err := grpc.NewClient("passthrough:///"+root.server.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	require.NoError(t, err)
	defer conn.Close()
	_, err = nodepb.NewNodeClient(conn).MintX509CA(t.Context(), &nodepb.MintX509CARequest{Csr: newCSR(t, td.IDString()).CSR})
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "%v", err)
}
