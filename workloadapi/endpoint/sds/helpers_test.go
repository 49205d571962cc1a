package sds_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

var (
	td    = spiffeid.RequireTrustDomainFromString("example.org")
	fedTD = spiffeid.RequireTrustDomainFromString("federated.test")
	webID = spiffeid.RequireFromPath(td, "/web")
	dbID  = spiffeid.RequireFromPath(td, "/db")
)

// fixture holds real authorities for the own and one federated trust
// domain, and a handler that gives this process's uid a view.
type fixture struct {
	root, fedRoot  *testca.CA
	own, federated *spiffebundle.Bundle
	handler        *endpoint.MemoryHandler
	uid            string
	logs           logtest.Buffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{root: testca.New(t, td), fedRoot: testca.New(t, fedTD)}
	f.own = spiffebundle.FromX509Authorities(td, []*x509.Certificate{f.root.Cert()})
	f.federated = spiffebundle.FromX509Authorities(fedTD, []*x509.Certificate{f.fedRoot.Cert()})
	f.handler = endpoint.NewMemoryHandler(endpoint.MemoryConfig{})
	f.uid = strconv.Itoa(os.Getuid())
	return f
}

// svid mints a fresh X509-SVID for id.
func (f *fixture) svid(t testing.TB, id spiffeid.ID) *x509svid.SVID {
	t.Helper()
	chain, key := f.root.NewLeaf(t, id)
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: key}
}

// set gives this process's uid the SVIDs and both bundles.
func (f *fixture) set(t testing.TB, svids ...*x509svid.SVID) *endpoint.Snapshot {
	t.Helper()
	snap := &endpoint.Snapshot{TrustDomain: td, X509SVIDs: svids, Bundles: []*spiffebundle.Bundle{f.own, f.federated}}
	require.NoError(t, f.handler.Set(f.uid, snap))
	return snap
}

// serve runs an endpoint with the SDS service of cfg (its Handler set to
// f's when nil) on a unix socket until the test ends, and returns a client.
func (f *fixture) serve(t testing.TB, cfg sds.Config, ecfg endpoint.Config) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	if cfg.Handler == nil {
		cfg.Handler = f.handler
	}
	if cfg.Logger == nil {
		cfg.Logger = f.logs.Logger()
	}
	srv, err := sds.New(cfg)
	require.NoError(t, err)
	ecfg.Handler, ecfg.Register = cfg.Handler, srv.Register
	if ecfg.MaxRequestSize == 0 {
		ecfg.MaxRequestSize = sds.MaxRequestSize
	}
	return secretv3.NewSecretDiscoveryServiceClient(serveEndpoint(t, ecfg))
}

// serveEndpoint runs an endpoint for cfg on a unix socket in a fresh
// directory until the test ends, and returns a connection to it.
func serveEndpoint(t testing.TB, cfg endpoint.Config) *grpc.ClientConn {
	t.Helper()
	dir, err := os.MkdirTemp("", "sds")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	lis, err := endpoint.ListenUnix(path, 0o770)
	require.NoError(t, err)
	srv, err := endpoint.New(cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// testCtx is a context for one test, bounded so that a hung stream fails
// the test rather than the whole run.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// envoy is the node of an Envoy of the given minor version (1.x).
func envoy(minor uint32) *corev3.Node {
	return &corev3.Node{Id: "envoy", Cluster: "test", UserAgentName: "envoy", UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{
		UserAgentBuildVersion: &corev3.BuildVersion{Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: minor}},
	}}
}

func fetch(t testing.TB, client secretv3.SecretDiscoveryServiceClient, node *corev3.Node, names ...string) (*discoveryv3.DiscoveryResponse, error) {
	t.Helper()
	return client.FetchSecrets(testCtx(t), &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: sds.SecretTypeURL, ResourceNames: names})
}

func requireCode(t testing.TB, want codes.Code, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, want, status.Code(err), "error: %v", err)
}

// secrets decodes the resources of a response, by name.
func secrets(t testing.TB, resources []*anypb.Any) map[string]*tlsv3.Secret {
	t.Helper()
	out := make(map[string]*tlsv3.Secret, len(resources))
	for _, a := range resources {
		require.Equal(t, sds.SecretTypeURL, a.TypeUrl)
		s := new(tlsv3.Secret)
		require.NoError(t, a.UnmarshalTo(s))
		require.NotContains(t, out, s.Name, "a name twice")
		out[s.Name] = s
	}
	return out
}

func names(m map[string]*tlsv3.Secret) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	return out
}

// requireSVID requires s to be a tls_certificate holding want's chain and
// key.
func requireSVID(t testing.TB, want *x509svid.SVID, s *tlsv3.Secret) {
	t.Helper()
	tc := s.GetTlsCertificate()
	require.NotNil(t, tc, "not a tls_certificate: %v", s)
	chain := parseCerts(t, tc.GetCertificateChain().GetInlineBytes())
	require.Len(t, chain, len(want.Certificates))
	for i := range chain {
		require.True(t, chain[i].Equal(want.Certificates[i]))
	}
	block, rest := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	require.NotNil(t, block)
	require.Empty(t, rest)
	require.Equal(t, "PRIVATE KEY", block.Type)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	require.NoError(t, err)
	// The key is the SVID's: x509svid parses the pair only if they match.
	_, err = x509svid.ParseRaw(concat(chain), block.Bytes)
	require.NoError(t, err)
	require.NotNil(t, key)
}

func concat(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, c.Raw...)
	}
	return out
}

func parseCerts(t testing.TB, b []byte) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for len(b) > 0 {
		var block *pem.Block
		block, b = pem.Decode(b)
		require.NotNil(t, block, "not PEM")
		require.Equal(t, "CERTIFICATE", block.Type)
		c, err := x509.ParseCertificate(block.Bytes)
		require.NoError(t, err)
		out = append(out, c)
	}
	return out
}

// requireTrustedCA requires s to be a validation_context with the
// authorities of b as trusted_ca.
func requireTrustedCA(t testing.TB, b *spiffebundle.Bundle, s *tlsv3.Secret) {
	t.Helper()
	vc := s.GetValidationContext()
	require.NotNil(t, vc, "not a validation_context: %v", s)
	require.Nil(t, vc.GetCustomValidatorConfig())
	requireCerts(t, b, vc.GetTrustedCa().GetInlineBytes())
}

func requireCerts(t testing.TB, b *spiffebundle.Bundle, pemBytes []byte) {
	t.Helper()
	got := parseCerts(t, pemBytes)
	want := b.X509Authorities()
	require.Len(t, got, len(want))
	for i := range got {
		require.True(t, got[i].Equal(want[i]))
	}
}

// requireValidator requires s to be a validation_context whose SPIFFE
// validator holds bundles, in that order.
func requireValidator(t testing.TB, s *tlsv3.Secret, bundles ...*spiffebundle.Bundle) {
	t.Helper()
	vc := s.GetValidationContext()
	require.NotNil(t, vc, "not a validation_context: %v", s)
	require.Nil(t, vc.GetTrustedCa())
	require.Equal(t, sds.SPIFFEValidatorName, vc.GetCustomValidatorConfig().GetName())
	cfg := new(tlsv3.SPIFFECertValidatorConfig)
	require.NoError(t, vc.GetCustomValidatorConfig().GetTypedConfig().UnmarshalTo(cfg))
	require.Len(t, cfg.TrustDomains, len(bundles))
	for i, b := range bundles {
		require.Equal(t, b.TrustDomain().Name(), cfg.TrustDomains[i].Name)
		requireCerts(t, b, cfg.TrustDomains[i].GetTrustBundle().GetInlineBytes())
	}
}

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

// waitLog waits until the server has logged line, for a test to know that
// a request it sent was read before it changes the view.
func (f *fixture) waitLog(t testing.TB, line string) {
	t.Helper()
	require.Eventually(t, func() bool { return f.logs.Contains(line) }, time.Minute, 2*time.Millisecond, "never logged: %s", line)
}
