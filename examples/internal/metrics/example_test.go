package metrics_test

import (
	"net/http/httptest"
	"os"

	"github.com/spiffekit/spiffekit/examples/internal/metrics"
)

func Example() {
	reg := metrics.New()
	syncs := reg.Counter("spiffe_agent_syncs_total", "Sync messages received from the server.")
	reg.GaugeFunc("spiffe_agent_entries", "Registration entries held.", func() float64 { return 3 })
	syncs.Inc()

	h := metrics.Handler(reg, func() error { return nil })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	os.Stdout.Write(rec.Body.Bytes())
	// Output:
	// # HELP spiffe_agent_entries Registration entries held.
	// # TYPE spiffe_agent_entries gauge
	// spiffe_agent_entries 3
	// # HELP spiffe_agent_syncs_total Sync messages received from the server.
	// # TYPE spiffe_agent_syncs_total counter
	// spiffe_agent_syncs_total 1
}
