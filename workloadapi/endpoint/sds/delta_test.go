package sds_test

import (
	"testing"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

type deltaStream = grpc.BidiStreamingClient[discoveryv3.DeltaDiscoveryRequest, discoveryv3.DeltaDiscoveryResponse]

func openDelta(t testing.TB, client secretv3.SecretDiscoveryServiceClient) deltaStream {
	t.Helper()
	s, err := client.DeltaSecrets(testCtx(t))
	require.NoError(t, err)
	return s
}

func sendDelta(t testing.TB, s deltaStream, req *discoveryv3.DeltaDiscoveryRequest) {
	t.Helper()
	req.TypeUrl = sds.SecretTypeURL
	require.NoError(t, s.Send(req))
}

func recvDelta(t testing.TB, s deltaStream) *discoveryv3.DeltaDiscoveryResponse {
	t.Helper()
	resp, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, sds.SecretTypeURL, resp.TypeUrl)
	require.NotEmpty(t, resp.Nonce)
	require.NotEmpty(t, resp.SystemVersionInfo)
	return resp
}

// deltaSecrets decodes the resources of a delta response by name, and
// checks that each is named as its secret is and has a version.
func deltaSecrets(t testing.TB, resp *discoveryv3.DeltaDiscoveryResponse) map[string]*discoveryv3.Resource {
	t.Helper()
	out := make(map[string]*discoveryv3.Resource, len(resp.Resources))
	anys := make([]*anypb.Any, 0, len(resp.Resources))
	for _, r := range resp.Resources {
		require.NotEmpty(t, r.Version)
		out[r.Name] = r
		anys = append(anys, r.Resource)
	}
	for name := range secrets(t, anys) {
		require.Contains(t, out, name)
	}
	return out
}

func secretOf(t testing.TB, r *discoveryv3.Resource) *tlsv3.Secret {
	t.Helper()
	return secrets(t, []*anypb.Any{r.Resource})[r.Name]
}

// TestDeltaSecrets runs the incremental protocol as Envoy does.
func TestDeltaSecrets(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web, db := f.svid(t, webID), f.svid(t, dbID)
	f.set(t, web, db)
	client := f.serve(t, sds.Config{}, endpoint.Config{})
	s := openDelta(t, client)

	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{Node: envoy(30), ResourceNamesSubscribe: []string{"default", "ROOTCA", dbID.String()}})
	first := recvDelta(t, s)
	require.Empty(t, first.RemovedResources)
	got := deltaSecrets(t, first)
	require.Len(t, got, 3)
	requireSVID(t, web, secretOf(t, got["default"]))
	requireSVID(t, db, secretOf(t, got[dbID.String()]))
	requireValidator(t, secretOf(t, got["ROOTCA"]), f.own)
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResponseNonce: first.Nonce}) // ACK

	// A rotation of web sends web alone: ROOTCA and db did not change.
	web2 := f.svid(t, webID)
	f.set(t, web2, db)
	second := recvDelta(t, s)
	got = deltaSecrets(t, second)
	require.Len(t, got, 1)
	requireSVID(t, web2, secretOf(t, got["default"]))
	require.NotEqual(t, first.Resources[0].Version, got["default"].Version)
	require.NotEqual(t, first.Nonce, second.Nonce)
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResponseNonce: second.Nonce, ErrorDetail: &status.Status{Code: 3, Message: "bad key"}}) // NACK

	// Subscribing to more: what exists is sent, what does not is named
	// removed.
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"federated.test", "spiffe://example.org/nobody"}})
	third := recvDelta(t, s)
	got = deltaSecrets(t, third)
	require.Len(t, got, 1)
	requireValidator(t, secretOf(t, got["federated.test"]), f.federated)
	require.Equal(t, []string{"spiffe://example.org/nobody"}, third.RemovedResources)
	require.True(t, f.logs.Contains("bad key"), f.logs.String())

	// The entry of db removed: db is named removed.
	f.set(t, web2)
	fourth := recvDelta(t, s)
	require.Empty(t, fourth.Resources)
	require.Equal(t, []string{dbID.String()}, fourth.RemovedResources)

	// Unsubscribed names are not followed: a rotation of web after the
	// client unsubscribed from "default" sends nothing; db, back, is sent.
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResponseNonce: fourth.Nonce, ResourceNamesUnsubscribe: []string{"default", "spiffe://example.org/nobody"}})
	f.waitLog(t, "unsubscribe=\"[default spiffe://example.org/nobody]\"")
	f.set(t, f.svid(t, webID), db)
	fifth := recvDelta(t, s)
	got = deltaSecrets(t, fifth)
	require.Len(t, got, 1, "only db: %v", got)
	requireSVID(t, db, secretOf(t, got[dbID.String()]))
	require.Empty(t, fifth.RemovedResources)

	// No identity left: the stream ends as the Workload API's do.
	require.NoError(t, f.handler.Set(f.uid, nil))
	_, err := s.Recv()
	requireCode(t, codes.PermissionDenied, err)
}

// TestDeltaWildcard: a first request subscribing to nothing, or "*",
// gets every resource; initial versions the client holds are not sent
// again.
func TestDeltaWildcard(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web := f.svid(t, webID)
	f.set(t, web)
	client := f.serve(t, sds.Config{}, endpoint.Config{})

	s := openDelta(t, client)
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{Node: envoy(30)})
	all := recvDelta(t, s)
	got := deltaSecrets(t, all)
	require.ElementsMatch(t, []string{"spiffe://example.org", "spiffe://federated.test", webID.String()}, keys(got))

	// Again, holding everything: nothing to send until a change.
	initial := map[string]string{}
	for name, r := range got {
		initial[name] = r.Version
	}
	s2 := openDelta(t, client)
	sendDelta(t, s2, &discoveryv3.DeltaDiscoveryRequest{Node: envoy(30), ResourceNamesSubscribe: []string{"*"}, InitialResourceVersions: initial})
	// Explicit names beside the wildcard are served too.
	sendDelta(t, s2, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"ALL"}})
	resp := recvDelta(t, s2)
	got = deltaSecrets(t, resp)
	require.Equal(t, []string{"ALL"}, keys(got))
	requireValidator(t, secretOf(t, got["ALL"]), f.own, f.federated)

	web2 := f.svid(t, webID)
	f.set(t, web2)
	for _, st := range []deltaStream{s, s2} {
		resp := recvDelta(t, st)
		got := deltaSecrets(t, resp)
		require.Equal(t, []string{webID.String()}, keys(got))
		requireSVID(t, web2, secretOf(t, got[webID.String()]))
	}

	// Leaving the wildcard: only the explicit names remain followed.
	sendDelta(t, s2, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesUnsubscribe: []string{"*"}})
	f.waitLog(t, "unsubscribe=[*]")
	f.set(t, f.svid(t, webID))
	recvDelta(t, s) // s is still a wildcard stream
	require.NoError(t, s2.CloseSend())
	_, err := s2.Recv()
	require.Error(t, err)
}

func TestDeltaBadRequest(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	client := f.serve(t, sds.Config{}, endpoint.Config{})

	s := openDelta(t, client)
	require.NoError(t, s.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"}))
	_, err := s.Recv()
	requireCode(t, codes.InvalidArgument, err)

	s = openDelta(t, client)
	many := make([]string, sds.MaxResourceNames+1)
	for i := range many {
		many[i] = "spiffe://example.org/w" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: many})
	_, err = s.Recv()
	requireCode(t, codes.InvalidArgument, err)

	s = openDelta(t, client)
	sendDelta(t, s, &discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"ALL"}}) // no node: no validator
	_, err = s.Recv()
	requireCode(t, codes.InvalidArgument, err)

	require.NoError(t, f.handler.Set(f.uid, nil))
	_, err = openDelta(t, client).Recv()
	requireCode(t, codes.PermissionDenied, err)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
