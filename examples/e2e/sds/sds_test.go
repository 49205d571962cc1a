package sds_test

import (
	"context"
	"encoding/pem"
	"os"
	"slices"
	"strconv"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestMain(m *testing.M) { progtest.Main(m) }

const (
	secretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
	webID      = "spiffe://example.org/web"
	dbID       = "spiffe://example.org/db"
	webEntry   = "0123456789abcdef0123456789abcdef"
	dbEntry    = "fedcba9876543210fedcba9876543210"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// node is what an Envoy 1.30 says of itself.
var node = &corev3.Node{Id: "envoy-e2e", Cluster: "e2e", UserAgentName: "envoy",
	UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
		Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 30}}}}

// TestSDS runs a server and an agent issuing SVIDs of 8 s (renewed every
// 4 s or so), and speaks SDS to the agent's socket as Envoy does: a caller
// with no entry is denied; with two entries it receives certificates and
// validation contexts on both protocols, ACKs them, NACKs one, sees each
// rotation pushed, and sees the SVID of a deleted entry disappear.
func TestSDS(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	e := progtest.NewEnv(t, "-x509-svid-ttl", "8s")
	e.StartServer()
	agent := e.StartAgent(e.Token())
	agentID := e.AgentID()
	client := dial(t, e.APISock)

	// No entry for this process: PermissionDenied once the agent has its
	// entries (before, Unavailable: retry).
	var err error
	progtest.WaitFor(t, "the agent to deny an unregistered caller over SDS", func() bool {
		_, err = client.FetchSecrets(ctx(t), &discoveryv3.DiscoveryRequest{TypeUrl: secretType, ResourceNames: []string{"default"}})
		return status.Code(err) != codes.Unavailable
	}, agent)
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	uid := "unix:uid:" + strconv.Itoa(os.Getuid())
	e.Entry(agentID, webID, uid, "-entry-id", webEntry)
	e.Entry(agentID, dbID, uid, "-entry-id", dbEntry)
	progtest.WaitFor(t, "both SVIDs over SDS", func() bool {
		_, err := client.FetchSecrets(ctx(t), &discoveryv3.DiscoveryRequest{TypeUrl: secretType, ResourceNames: []string{webID, dbID}})
		return err == nil
	}, agent)

	// State of the world: the web SVID, the own bundle (ROOTCA) and every
	// bundle (ALL), as a recent Envoy gets them.
	sotw, err := client.StreamSecrets(ctx(t))
	require.NoError(t, err)
	require.NoError(t, sotw.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType, ResourceNames: []string{webID, "ROOTCA", "ALL"}}))
	r1 := recvSotW(t, sotw)
	got := secrets(t, r1.Resources)
	require.ElementsMatch(t, []string{webID, "ROOTCA", "ALL"}, keys(got))
	bundle := validatorBundles(t, got["ROOTCA"])[td]
	require.NotNil(t, bundle)
	all := validatorBundles(t, got["ALL"])
	require.Equal(t, []spiffeid.TrustDomain{td}, keys(all))
	serial1 := requireSVID(t, got[webID], webID, bundle)
	ack(t, sotw, r1, webID, "ROOTCA", "ALL")

	// The agent renews the SVID: the new one is pushed, with a new
	// version and nonce.
	r2 := recvSotW(t, sotw)
	require.NotEqual(t, r1.VersionInfo, r2.VersionInfo)
	require.NotEqual(t, r1.Nonce, r2.Nonce)
	serial2 := requireSVID(t, secrets(t, r2.Resources)[webID], webID, bundle)
	require.NotEqual(t, serial1, serial2, "a new SVID")
	// NACK it, as an Envoy that failed to apply it: the agent logs it and
	// pushes the next rotation all the same.
	require.NoError(t, sotw.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType, VersionInfo: r1.VersionInfo, ResponseNonce: r2.Nonce,
		ResourceNames: []string{webID, "ROOTCA", "ALL"}, ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "e2e rejects this one"}}))
	r3 := recvSotW(t, sotw)
	serial3 := requireSVID(t, secrets(t, r3.Resources)[webID], webID, bundle)
	require.NotEqual(t, serial2, serial3)
	ack(t, sotw, r3, webID, "ROOTCA", "ALL")

	// A state of the world stream asking for everything, and an
	// incremental one for the default SVID, db's and the trust domain.
	everything, err := client.StreamSecrets(ctx(t))
	require.NoError(t, err)
	require.NoError(t, everything.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: secretType}))
	a1 := recvSotW(t, everything)
	require.ElementsMatch(t, []string{"spiffe://example.org", webID, dbID}, keys(secrets(t, a1.Resources)))
	ack(t, everything, a1)

	delta, err := client.DeltaSecrets(ctx(t))
	require.NoError(t, err)
	require.NoError(t, delta.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: secretType,
		ResourceNamesSubscribe: []string{"default", dbID, "spiffe://example.org"}}))
	d1 := recvDelta(t, delta)
	require.Empty(t, d1.RemovedResources)
	dgot := map[string]*tlsv3.Secret{}
	for _, r := range d1.Resources {
		require.NotEmpty(t, r.Version)
		dgot[r.Name] = secrets(t, []*anypb.Any{r.Resource})[r.Name]
	}
	require.ElementsMatch(t, []string{"default", dbID, "spiffe://example.org"}, keys(dgot))
	requireSVID(t, dgot[dbID], dbID, bundle)
	require.NoError(t, delta.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: secretType, ResponseNonce: d1.Nonce}))

	// A rotation reaches the incremental stream too, as the resources
	// whose version changed only.
	d2 := recvDelta(t, delta)
	require.NotEmpty(t, d2.Resources)
	for _, r := range d2.Resources {
		require.Contains(t, []string{"default", dbID}, r.Name, "only SVIDs rotate")
		require.NotEqual(t, versionOf(d1, r.Name), r.Version)
	}
	require.NoError(t, delta.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: secretType, ResponseNonce: d2.Nonce}))

	// The db entry deleted: the incremental stream names db removed, the
	// stream asking for everything stops carrying it.
	progtest.Must(t, e.ServerBin, "entry", "delete", "-admin-socket", e.AdminSock, "-entry-id", dbEntry)
	for {
		d := recvDelta(t, delta)
		require.NoError(t, delta.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: secretType, ResponseNonce: d.Nonce}))
		if slices.Contains(d.RemovedResources, dbID) {
			break
		}
	}
	for {
		a := recvSotW(t, everything)
		ack(t, everything, a)
		if names := keys(secrets(t, a.Resources)); !slices.Contains(names, dbID) {
			require.ElementsMatch(t, []string{"spiffe://example.org", webID}, names)
			break
		}
	}
	_, err = client.FetchSecrets(ctx(t), &discoveryv3.DiscoveryRequest{TypeUrl: secretType, ResourceNames: []string{dbID}})
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	// The NACK was logged by the agent; no stream failed.
	assert.Contains(t, agent.Output(), "e2e rejects this one")
	for _, s := range []grpc.ClientStream{sotw, everything, delta} {
		require.NoError(t, s.CloseSend())
	}
}

func dial(t *testing.T, sock string) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), progtest.Timeout)
	t.Cleanup(cancel)
	return c
}

type sotwStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

func recvSotW(t *testing.T, s sotwStream) *discoveryv3.DiscoveryResponse {
	t.Helper()
	r, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, secretType, r.TypeUrl)
	require.NotEmpty(t, r.Nonce)
	return r
}

func ack(t *testing.T, s sotwStream, r *discoveryv3.DiscoveryResponse, names ...string) {
	t.Helper()
	require.NoError(t, s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: secretType, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce, ResourceNames: names}))
}

func recvDelta(t *testing.T, s grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]) *discoveryv3.DeltaDiscoveryResponse {
	t.Helper()
	r, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, secretType, r.TypeUrl)
	require.NotEmpty(t, r.Nonce)
	return r
}

func versionOf(r *discoveryv3.DeltaDiscoveryResponse, name string) string {
	for _, res := range r.Resources {
		if res.Name == name {
			return res.Version
		}
	}
	return ""
}

func secrets(t *testing.T, resources []*anypb.Any) map[string]*tlsv3.Secret {
	t.Helper()
	out := map[string]*tlsv3.Secret{}
	for _, a := range resources {
		s := new(tlsv3.Secret)
		require.NoError(t, a.UnmarshalTo(s))
		out[s.Name] = s
	}
	return out
}

func keys[K comparable, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// validatorBundles reads the trust domains of a validation context's
// SPIFFE certificate validator.
func validatorBundles(t *testing.T, s *tlsv3.Secret) map[spiffeid.TrustDomain]*x509bundle.Bundle {
	t.Helper()
	vc := s.GetValidationContext().GetCustomValidatorConfig()
	require.Equal(t, "envoy.tls.cert_validator.spiffe", vc.GetName())
	cfg := new(tlsv3.SPIFFECertValidatorConfig)
	require.NoError(t, vc.GetTypedConfig().UnmarshalTo(cfg))
	out := map[spiffeid.TrustDomain]*x509bundle.Bundle{}
	for _, d := range cfg.TrustDomains {
		td := spiffeid.RequireTrustDomainFromString(d.Name)
		b, err := x509bundle.Parse(td, d.GetTrustBundle().GetInlineBytes())
		require.NoError(t, err)
		out[td] = b
	}
	return out
}

// requireSVID requires s to be a tls_certificate of id whose key goes
// with its chain, which verifies with bundle; it returns the leaf's serial.
func requireSVID(t *testing.T, s *tlsv3.Secret, id string, bundle *x509bundle.Bundle) string {
	t.Helper()
	tc := s.GetTlsCertificate()
	require.NotNil(t, tc, "not a tls_certificate: %v", s)
	var chain []byte
	for rest := tc.GetCertificateChain().GetInlineBytes(); len(rest) > 0; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		require.NotNil(t, b)
		chain = append(chain, b.Bytes...)
	}
	key, _ := pem.Decode(tc.GetPrivateKey().GetInlineBytes())
	require.NotNil(t, key)
	svid, err := x509svid.ParseRaw(chain, key.Bytes)
	require.NoError(t, err)
	require.Equal(t, id, svid.ID.String())
	got, _, err := x509svid.Verify(svid.Certificates, bundle)
	require.NoError(t, err)
	require.Equal(t, id, got.String())
	return svid.Certificates[0].SerialNumber.String()
}
