package agent_test

import (
	"context"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint/sds"
)

// TestAgentServesSDS: with Config.SDS, the agent's Workload API socket
// also serves Envoy's SDS, attesting the caller as the Workload API does;
// without it, SDS is not there.
func TestAgentServesSDS(t *testing.T) {
	s := startServer(t)
	cfg := s.AgentConfig(t)
	cfg.SDS = &sds.Config{}
	obs := &observed{}
	cfg.APIObserver = obs
	a := nodetest.StartAgent(t, cfg)
	a.WaitSynced(t)
	client := sdsClient(t, a.Addr)

	// Nothing registered for this process yet.
	_, err := client.FetchSecrets(ctxFor(t), &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
	require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)

	web := s.Register(t, a.ID(), "/web")
	want := a.WaitSVID(t, web.SPIFFEID)
	resp, err := client.FetchSecrets(ctxFor(t), &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default", "ROOTCA"}})
	require.NoError(t, err)
	require.Len(t, resp.Resources, 2)
	secret := new(tlsv3.Secret)
	require.NoError(t, resp.Resources[0].UnmarshalTo(secret))
	require.Equal(t, "default", secret.Name)
	require.Contains(t, string(secret.GetTlsCertificate().GetCertificateChain().GetInlineBytes()), "BEGIN CERTIFICATE")
	require.NotEmpty(t, want.Certificates)
	// SDS calls are observed as Workload API calls are.
	assert.Equal(t, 1, obs.count("answered FetchSecrets PermissionDenied"), "%v", obs.snapshot())
	assert.GreaterOrEqual(t, obs.count("answered FetchSecrets OK"), 1, "%v", obs.snapshot())

	// Without SDS, the service is not registered.
	plain := nodetest.StartAgent(t, s.AgentConfig(t))
	_, err = sdsClient(t, plain.Addr).FetchSecrets(ctxFor(t), &discoveryv3.DiscoveryRequest{ResourceNames: []string{"default"}})
	require.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
}

func TestAgentRefusesBadSDSConfig(t *testing.T) {
	s := startServer(t)
	cfg := s.AgentConfig(t)
	cfg.SDS = &sds.Config{DefaultSVIDName: "ROOTCA"}
	_, err := nodetest.TryAgent(t, cfg)
	require.ErrorContains(t, err, "must differ")
}

func sdsClient(t *testing.T, addr string) secretv3.SecretDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return secretv3.NewSecretDiscoveryServiceClient(conn)
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}
