package metrics_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/metrics"
	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
)

// constCollector makes one sample of a Desc at each scrape.
type constCollector struct {
	d *prometheus.Desc
	v float64
}

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.d }
func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.d, prometheus.GaugeValue, c.v, "a")
}

// Property: every family a Namespace makes is named namespace_name, with
// its labels, and a histogram counts into Buckets.
func TestNamespace(t *testing.T) {
	ns := metrics.Namespace("prog")
	reg := prometheus.NewRegistry()
	counter := ns.Counter("calls_total", "Calls.", "method")
	gauge := ns.Gauge("open", "Open streams.", "method")
	hist := ns.Histogram("call_duration_seconds", "Call latency.", "method")
	reg.MustRegister(counter, gauge, hist, constCollector{ns.Desc("state", "A state.", "kind"), 7})

	counter.WithLabelValues("Fetch").Add(2)
	gauge.WithLabelValues("Watch").Inc()
	hist.WithLabelValues("Fetch").Observe(0.0002) // in the second bucket (0.0004)

	rec := httptest.NewRecorder()
	metrics.Handler(reg, nil, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	s, err := metricstest.Parse(rec.Body)
	require.NoError(t, err)
	assert.Equal(t, metricstest.Samples{
		metricstest.Series("prog_calls_total", "method", "Fetch"):                 2,
		metricstest.Series("prog_open", "method", "Watch"):                        1,
		metricstest.Series("prog_call_duration_seconds_count", "method", "Fetch"): 1,
		metricstest.Series("prog_call_duration_seconds_sum", "method", "Fetch"):   0.0002,
		metricstest.Series("prog_state", "kind", "a"):                             7,
	}, s)

	families, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != "prog_call_duration_seconds" {
			continue
		}
		var bounds []float64
		for _, b := range f.GetMetric()[0].GetHistogram().GetBucket() {
			bounds = append(bounds, b.GetUpperBound())
		}
		assert.Equal(t, metrics.Buckets, bounds)
		return
	}
	t.Fatal("no histogram gathered")
}

func TestUnixSeconds(t *testing.T) {
	assert.Equal(t, 1.5, metrics.UnixSeconds(time.Unix(1, 500_000_000)))
	assert.Equal(t, 0.0, metrics.UnixSeconds(time.Unix(0, 0)))
}
