package metrics_test

import (
	"net/http/httptest"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spiffekit/spiffekit/examples/internal/metrics"
)

func Example() {
	reg := prometheus.NewRegistry() // metrics.NewRegistry() adds the go_* and process_* metrics
	syncs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "spiffekit_agent_syncs_total",
		Help: "Sync messages received from the server.",
	}, []string{"server"})
	reg.MustRegister(syncs)
	syncs.WithLabelValues("a").Inc()

	h := metrics.Handler(reg, func() error { return nil }, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	os.Stdout.Write(rec.Body.Bytes())
	// Output:
	// # HELP spiffekit_agent_syncs_total Sync messages received from the server.
	// # TYPE spiffekit_agent_syncs_total counter
	// spiffekit_agent_syncs_total{server="a"} 1
}
