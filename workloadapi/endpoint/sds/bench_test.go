package sds_test

import (
	"fmt"
	"log/slog"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// BenchmarkFetchSecrets measures one FetchSecrets call over a unix socket,
// for the default SVID and the own bundle (as an SPIFFE validator), from
// the request to the decoded response: what an Envoy that fetches once
// waits.
func BenchmarkFetchSecrets(b *testing.B) {
	f := newFixture(b)
	f.set(b, f.svid(b, webID))
	client := f.serve(b, sds.Config{Logger: discard()}, endpoint.Config{})
	req := &discoveryv3.DiscoveryRequest{Node: envoy(30), TypeUrl: sds.SecretTypeURL, ResourceNames: []string{"default", "ROOTCA"}}
	ctx := testCtx(b)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.FetchSecrets(ctx, req)
		if err != nil || len(resp.Resources) != 2 {
			b.Fatal(resp, err)
		}
	}
}

// BenchmarkRotationFanOut measures a rotation reaching open SDS streams:
// from the moment the handler has a new view (a new SVID) to the moment
// every stream has received its new response (and sent its ACK), with
// the streams spread over 10 connections as over 10 Envoys. ns/op is the
// time of one rotation to all the streams.
func BenchmarkRotationFanOut(b *testing.B) {
	for _, streams := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			benchFanOut(b, streams)
		})
	}
}

func benchFanOut(b *testing.B, streams int) {
	f := newFixture(b)
	svids := []*x509svid.SVID{f.svid(b, webID), f.svid(b, webID)}
	f.set(b, svids[0])
	const conns = 10
	clients := make([]secretv3.SecretDiscoveryServiceClient, conns)
	srv, err := sds.New(sds.Config{Handler: f.handler, Logger: discard()})
	require.NoError(b, err)
	conn := serveEndpoint(b, endpoint.Config{Handler: f.handler, Register: srv.Register, MaxRequestSize: sds.MaxRequestSize})
	clients[0] = secretv3.NewSecretDiscoveryServiceClient(conn)
	for i := 1; i < conns; i++ {
		clients[i] = secretv3.NewSecretDiscoveryServiceClient(redial(b, conn.Target()))
	}
	ctx := testCtx(b)
	got := make(chan struct{}, streams)
	errc := make(chan error, streams)
	for i := range streams {
		s, err := clients[i%conns].StreamSecrets(ctx)
		require.NoError(b, err)
		names := []string{"default", "ROOTCA"}
		require.NoError(b, s.Send(&discoveryv3.DiscoveryRequest{Node: envoy(30), TypeUrl: sds.SecretTypeURL, ResourceNames: names}))
		go func() {
			for {
				resp, err := s.Recv()
				if err != nil {
					errc <- err
					return
				}
				if err := s.Send(&discoveryv3.DiscoveryRequest{TypeUrl: sds.SecretTypeURL, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce, ResourceNames: names}); err != nil {
					errc <- err
					return
				}
				got <- struct{}{}
			}
		}()
	}
	wait := func() {
		for range streams {
			select {
			case <-got:
			case err := <-errc:
				b.Fatal(err)
			}
		}
	}
	wait() // the first responses
	i := 0
	for b.Loop() {
		i++
		f.set(b, svids[i%2])
		wait()
	}
	b.ReportMetric(float64(streams), "streams")
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func redial(b *testing.B, target string) *grpc.ClientConn {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecureCreds()))
	require.NoError(b, err)
	b.Cleanup(func() { conn.Close() })
	return conn
}
