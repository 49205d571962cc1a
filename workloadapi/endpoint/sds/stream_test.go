package sds_test

import (
	"context"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

type sotwStream = grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]

func openSotW(t testing.TB, client secretv3.SecretDiscoveryServiceClient) sotwStream {
	t.Helper()
	s, err := client.StreamSecrets(testCtx(t))
	require.NoError(t, err)
	return s
}

func send(t testing.TB, s sotwStream, req *discoveryv3.DiscoveryRequest) {
	t.Helper()
	req.TypeUrl = sds.SecretTypeURL
	require.NoError(t, s.Send(req))
}

func recv(t testing.TB, s sotwStream) *discoveryv3.DiscoveryResponse {
	t.Helper()
	resp, err := s.Recv()
	require.NoError(t, err)
	require.Equal(t, sds.SecretTypeURL, resp.TypeUrl)
	require.NotEmpty(t, resp.VersionInfo)
	require.NotEmpty(t, resp.Nonce)
	return resp
}

// ack acknowledges resp for names.
func ack(t testing.TB, s sotwStream, resp *discoveryv3.DiscoveryResponse, names ...string) {
	t.Helper()
	send(t, s, &discoveryv3.DiscoveryRequest{VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: names})
}

// TestStreamSecrets runs the state of the world protocol as Envoy does:
// request, ACK, rotation pushed, NACK, names changed, stale nonce.
func TestStreamSecrets(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web := f.svid(t, webID)
	f.set(t, web)
	client := f.serve(t, sds.Config{}, endpoint.Config{})
	s := openSotW(t, client)

	send(t, s, &discoveryv3.DiscoveryRequest{Node: envoy(30), ResourceNames: []string{"default", "ROOTCA"}})
	first := recv(t, s)
	got := secrets(t, first.Resources)
	requireSVID(t, web, got["default"])
	requireValidator(t, got["ROOTCA"], f.own)
	ack(t, s, first, "default", "ROOTCA")

	// The same view again wakes the stream but sends nothing; the
	// rotation after it is the next response.
	f.set(t, web)
	web2 := f.svid(t, webID)
	f.set(t, web2)
	rotated := recv(t, s)
	require.NotEqual(t, first.VersionInfo, rotated.VersionInfo)
	require.NotEqual(t, first.Nonce, rotated.Nonce)
	got = secrets(t, rotated.Resources)
	requireSVID(t, web2, got["default"])
	requireValidator(t, got["ROOTCA"], f.own) // the node of the first request still counts

	// A NACK is logged and answered with nothing until the view changes.
	send(t, s, &discoveryv3.DiscoveryRequest{VersionInfo: first.VersionInfo, ResponseNonce: rotated.Nonce,
		ResourceNames: []string{"default", "ROOTCA"}, ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "bad certificate"}})
	// A request with a stale nonce is ignored, even though it names
	// other resources.
	send(t, s, &discoveryv3.DiscoveryRequest{VersionInfo: first.VersionInfo, ResponseNonce: first.Nonce, ResourceNames: []string{"ALL"}})
	f.waitLog(t, "names=[ALL]")
	web3 := f.svid(t, webID)
	f.set(t, web3)
	third := recv(t, s)
	got = secrets(t, third.Resources)
	require.ElementsMatch(t, []string{"default", "ROOTCA"}, names(got))
	requireSVID(t, web3, got["default"])
	require.True(t, f.logs.Contains("Envoy rejected secrets"), f.logs.String())
	require.True(t, f.logs.Contains("bad certificate"))
	require.True(t, f.logs.Contains("stale nonce"))

	// A request naming other resources, with the last nonce, is answered
	// at once.
	send(t, s, &discoveryv3.DiscoveryRequest{VersionInfo: third.VersionInfo, ResponseNonce: third.Nonce, ResourceNames: []string{"ALL", "spiffe://federated.test"}})
	fourth := recv(t, s)
	got = secrets(t, fourth.Resources)
	require.ElementsMatch(t, []string{"ALL", "spiffe://federated.test"}, names(got))
	requireValidator(t, got["ALL"], f.own, f.federated)

	// An ACK of the same names is not answered: the next response is
	// the next change.
	ack(t, s, fourth, "spiffe://federated.test", "ALL")
	f.federated = f.federated.Clone()           // a snapshot's bundles are never changed
	f.federated.AddX509Authority(f.root.Cert()) // a new authority (here, any certificate)
	f.set(t, web3)
	fifth := recv(t, s)
	requireValidator(t, secrets(t, fifth.Resources)["spiffe://federated.test"], f.federated)

	require.NoError(t, s.CloseSend())
	_, err := s.Recv()
	require.Error(t, err) // the server ended the stream when the client closed its side
}

// TestStreamSecretsIdentityGone: a requested SVID that goes away ends the
// stream with InvalidArgument, as in SPIRE; with no names, it disappears
// from the next response; a caller with no identity left gets
// PermissionDenied.
func TestStreamSecretsIdentityGone(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	web, db := f.svid(t, webID), f.svid(t, dbID)
	f.set(t, web, db)
	client := f.serve(t, sds.Config{}, endpoint.Config{})

	named := openSotW(t, client)
	send(t, named, &discoveryv3.DiscoveryRequest{ResourceNames: []string{dbID.String()}})
	recv(t, named)
	all := openSotW(t, client)
	send(t, all, &discoveryv3.DiscoveryRequest{})
	resp := recv(t, all)
	require.ElementsMatch(t, []string{"spiffe://example.org", "spiffe://federated.test", webID.String(), dbID.String()}, names(secrets(t, resp.Resources)))

	f.set(t, web) // the entry of db removed
	_, err := named.Recv()
	requireCode(t, codes.InvalidArgument, err)
	resp = recv(t, all)
	require.ElementsMatch(t, []string{"spiffe://example.org", "spiffe://federated.test", webID.String()}, names(secrets(t, resp.Resources)))

	require.NoError(t, f.handler.Set(f.uid, nil))
	_, err = all.Recv()
	requireCode(t, codes.PermissionDenied, err)
	require.ErrorContains(t, err, "no identity issued")

	// A stream opened without an identity fails at once.
	_, err = openSotW(t, client).Recv()
	requireCode(t, codes.PermissionDenied, err)
}

func TestStreamSecretsBadRequest(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	client := f.serve(t, sds.Config{}, endpoint.Config{})

	s := openSotW(t, client)
	require.NoError(t, s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: "type.googleapis.com/envoy.config.listener.v3.Listener"}))
	_, err := s.Recv()
	requireCode(t, codes.InvalidArgument, err)

	s = openSotW(t, client)
	send(t, s, &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default", "spiffe://example.org/other"}})
	_, err = s.Recv()
	requireCode(t, codes.InvalidArgument, err)
	require.ErrorContains(t, err, `["spiffe://example.org/other"]`)

	s = openSotW(t, client)
	send(t, s, &discoveryv3.DiscoveryRequest{Node: envoy(17), ResourceNames: []string{"ALL"}})
	_, err = s.Recv()
	requireCode(t, codes.InvalidArgument, err)
}

// TestStreamShutdown: streams end with Unavailable when the endpoint
// stops, without waiting for its grace period.
func TestStreamShutdown(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	f.set(t, f.svid(t, webID))
	srv, err := sds.New(sds.Config{Handler: f.handler})
	require.NoError(t, err)
	ep, err := endpoint.New(endpoint.Config{Handler: f.handler, Register: srv.Register, ShutdownGrace: 10 * 60e9})
	require.NoError(t, err)
	dir := t.TempDir()
	lis, err := endpoint.ListenUnix(dir+"/s.sock", 0o700)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ep.Serve(ctx, lis) }()
	conn, err := grpc.NewClient("unix://"+dir+"/s.sock", grpc.WithTransportCredentials(insecureCreds()))
	require.NoError(t, err)
	defer conn.Close()
	client := secretv3.NewSecretDiscoveryServiceClient(conn)

	s := openSotW(t, client)
	send(t, s, &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
	recv(t, s)
	d, err := client.DeltaSecrets(testCtx(t))
	require.NoError(t, err)
	require.NoError(t, d.Send(&discoveryv3.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"default"}}))
	_, err = d.Recv()
	require.NoError(t, err)

	cancel()
	_, err = s.Recv()
	requireCode(t, codes.Unavailable, err)
	_, err = d.Recv()
	requireCode(t, codes.Unavailable, err)
	conn.Close()
	require.NoError(t, <-done) // without the ten minutes of grace
}
