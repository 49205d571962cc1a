package e2e_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// series is a Prometheus series, its name first and then its label pairs,
// and the least value a scrape must show for it.
type series struct {
	name   string
	labels []string
	min    float64
}

// requireSeries checks that every series of want is in s, at least at its
// minimum.
func requireSeries(t *testing.T, s metricstest.Samples, want []series) {
	t.Helper()
	for _, w := range want {
		v, ok := s.Get(w.name, w.labels...)
		key := metricstest.Series(w.name, w.labels...)
		if assert.True(t, ok, "no series %s", key) {
			assert.GreaterOrEqual(t, v, w.min, key)
		}
	}
}

func healthz(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetrics runs both programs with -metrics-addr, attests an agent (and
// refuses another), fetches an X509-SVID and a JWT-SVID through it, and
// scrapes both: the labelled series of what happened are there, counted.
func TestMetrics(t *testing.T) {
	serverMetrics, agentMetrics := progtest.FreePort(t), progtest.FreePort(t)
	e := progtest.NewEnv(t, "-metrics-addr", serverMetrics)
	e.StartServer()
	token := e.Token()
	progtest.Start(t, e.AgentBin, "run", "-trust-domain", "example.org", "-server", e.Bind, "-trust-bundle", e.BundleFile,
		"-join-token", token, "-socket", e.APISock, "-data-dir", filepath.Join(e.Dir, "agent-data"),
		"-metrics-addr", agentMetrics)
	id := e.AgentID()

	// A second agent with the spent token is refused.
	_, errOut, code := progtest.Run(t, nil, e.AgentBin, "run", "-trust-domain", "example.org", "-server", e.Bind,
		"-trust-bundle", e.BundleFile, "-join-token", token, "-socket", filepath.Join(e.Dir, "other.sock"),
		"-data-dir", filepath.Join(e.Dir, "other-data"))
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "refused")

	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the SVID", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/web") })
	progtest.Must(t, e.AgentBin, "api", "fetch", "jwt", "-audience", "db", "-socket", e.APISock)

	var srv metricstest.Samples
	progtest.WaitFor(t, "the agent counted as connected", func() bool {
		srv = metricstest.Scrape(t, "http://"+serverMetrics+"/metrics")
		v, _ := srv.Get("spiffekit_server_connected_agents")
		return v == 1
	})
	requireSeries(t, srv, []series{
		{"spiffekit_server_node_attestations_total", []string{"attestor", "join_token", "outcome", "ok"}, 1},
		{"spiffekit_server_node_attestations_total", []string{"attestor", "join_token", "outcome", "refused"}, 1},
		{"spiffekit_server_node_rpcs_total", []string{"method", "Attest", "code", "OK"}, 1},
		{"spiffekit_server_node_rpcs_total", []string{"method", "Attest", "code", "PermissionDenied"}, 1},
		{"spiffekit_server_node_rpcs_total", []string{"method", "SignX509SVIDs", "code", "OK"}, 1},
		{"spiffekit_server_node_rpcs_total", []string{"method", "SignJWTSVID", "code", "OK"}, 1},
		{"spiffekit_server_node_rpc_duration_seconds_count", []string{"method", "SignX509SVIDs", "code", "OK"}, 1},
		{"spiffekit_server_svids_signed_total", []string{"svid_type", "agent", "outcome", "ok"}, 1},
		{"spiffekit_server_svids_signed_total", []string{"svid_type", "x509", "outcome", "ok"}, 1},
		{"spiffekit_server_svids_signed_total", []string{"svid_type", "jwt", "outcome", "ok"}, 1},
		{"spiffekit_server_svid_sign_duration_seconds_count", []string{"svid_type", "x509"}, 1},
		{"spiffekit_server_entries", nil, 1},
		{"spiffekit_server_agents", nil, 1},
		{"spiffekit_server_ca_expiry_seconds", nil, 60},
		{"spiffekit_server_bundle_x509_authorities", nil, 1},
		{"process_start_time_seconds", nil, 1},
	})
	v, _ := srv.Get("spiffekit_server_node_attestations_total", "attestor", "join_token", "outcome", "ok")
	assert.Equal(t, 1.0, v, "one agent attested")

	requireSeries(t, metricstest.Scrape(t, "http://"+agentMetrics+"/metrics"), []series{
		{"spiffekit_agent_workload_api_request_duration_seconds_count", []string{"method", "FetchX509SVID", "code", "OK"}, 1},
		{"spiffekit_agent_workload_api_request_duration_seconds_count", []string{"method", "FetchJWTSVID", "code", "OK"}, 1},
		{"spiffekit_agent_workload_attestation_duration_seconds_count", []string{"attestor", "unix", "outcome", "ok"}, 2},
		{"spiffekit_agent_svids_signed_total", []string{"svid_type", "x509", "outcome", "ok"}, 1},
		{"spiffekit_agent_svids_signed_total", []string{"svid_type", "jwt", "outcome", "ok"}, 1},
		{"spiffekit_agent_sign_request_duration_seconds_count", []string{"svid_type", "x509"}, 1},
		{"spiffekit_agent_entries", nil, 1},
		{"spiffekit_agent_connected", nil, 1},
		{"spiffekit_agent_healthy", nil, 1},
		{"spiffekit_agent_workload_api_streams", []string{"method", "FetchX509SVID"}, 0},
		{"go_goroutines", nil, 1},
	})
	assert.Equal(t, http.StatusOK, healthz(t, serverMetrics))
	assert.Equal(t, http.StatusOK, healthz(t, agentMetrics))
}
