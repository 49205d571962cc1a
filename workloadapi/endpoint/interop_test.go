package endpoint_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestClientInterop runs this module's go-spiffe-compatible client against
// the server: every message passes the client's checks (section D of the
// Workload API notes).
func TestClientInterop(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, "internal"), f.svid(t, dbID, "external"))))
	_, path := serve(t, endpoint.Config{Handler: f.handler})
	ctx := t.Context()
	client, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+path))
	require.NoError(t, err)
	defer client.Close()

	x509ctx, err := client.FetchX509Context(ctx)
	require.NoError(t, err)
	require.Len(t, x509ctx.SVIDs, 2)
	assert.Equal(t, webID, x509ctx.SVIDs[0].ID)
	assert.Equal(t, "internal", x509ctx.SVIDs[0].Hint)
	assert.Equal(t, 2, x509ctx.Bundles.Len())

	bundles, err := client.FetchX509Bundles(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, bundles.Len())

	svid, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
	require.NoError(t, err)
	assert.Equal(t, webID, svid.ID)

	jwtBundles, err := client.FetchJWTBundles(ctx)
	require.NoError(t, err)
	_, err = jwtsvid.ParseAndValidate(svid.Marshal(), jwtBundles, []string{"db"})
	require.NoError(t, err)

	validated, err := client.ValidateJWTSVID(ctx, svid.Marshal(), "db")
	require.NoError(t, err)
	assert.Equal(t, webID, validated.ID)
}

// TestRegisterExtraService serves the gRPC health service beside the
// Workload API (WE rule 7); only Workload API methods need the security
// header.
func TestRegisterExtraService(t *testing.T) {
	f := newFixture(t)
	_, path := serve(t, endpoint.Config{Handler: f.handler, Register: func(r grpc.ServiceRegistrar) {
		healthpb.RegisterHealthServer(r, health.NewServer())
	}})
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(t.Context(), &healthpb.HealthCheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.Status)
}
