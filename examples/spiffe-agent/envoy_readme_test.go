package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestREADMEEnvoyConfig reads the Envoy configuration of the README's SDS
// section with Envoy's own API types and their validation rules (no Envoy
// binary here): a valid cluster for the agent's socket, and a valid TLS
// context whose SDS secrets come from that cluster over gRPC, xDS v3.
func TestREADMEEnvoyConfig(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	require.NoError(t, err)
	_, rest, ok := strings.Cut(string(readme), "### Envoy SDS")
	require.True(t, ok)
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	require.True(t, ok)
	snippet, _, ok := strings.Cut(rest, "```")
	require.True(t, ok)

	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(snippet), &doc))
	clusters, ok := doc["clusters"].([]any)
	require.True(t, ok)
	require.Len(t, clusters, 1)
	cluster := new(clusterv3.Cluster)
	fromYAML(t, clusters[0], cluster)
	require.NoError(t, cluster.ValidateAll())
	require.Equal(t, "spire_agent", cluster.Name)
	require.Equal(t, "/run/spiffe-agent/api.sock",
		cluster.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetPipe().GetPath(),
		"the agent's default socket")

	ts := new(corev3.TransportSocket)
	fromYAML(t, doc["transport_socket"], ts)
	require.NoError(t, ts.ValidateAll())
	tlsCtx := new(tlsv3.DownstreamTlsContext)
	require.NoError(t, ts.GetTypedConfig().UnmarshalTo(tlsCtx))
	require.NoError(t, tlsCtx.ValidateAll())
	common := tlsCtx.GetCommonTlsContext()
	sources := []*corev3.ConfigSource{
		common.GetTlsCertificateSdsSecretConfigs()[0].GetSdsConfig(),
		common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetSdsConfig(),
	}
	require.Equal(t, "spiffe://example.org/web", common.GetTlsCertificateSdsSecretConfigs()[0].GetName())
	require.Equal(t, "spiffe://example.org", common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName())
	for _, src := range sources {
		require.Equal(t, corev3.ApiVersion_V3, src.GetResourceApiVersion())
		api := src.GetApiConfigSource()
		require.Equal(t, corev3.ApiConfigSource_GRPC, api.GetApiType())
		require.Equal(t, corev3.ApiVersion_V3, api.GetTransportApiVersion())
		require.Equal(t, "spire_agent", api.GetGrpcServices()[0].GetEnvoyGrpc().GetClusterName())
	}
}

// fromYAML reads v, a decoded YAML value, into m as Envoy reads YAML:
// through its JSON form, with protobuf's JSON mapping.
func fromYAML(t *testing.T, v any, m proto.Message) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, protojson.Unmarshal(b, m))
}
