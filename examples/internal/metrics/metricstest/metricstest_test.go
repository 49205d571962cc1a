package metricstest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
)

func TestScrape(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "calls_total", Help: "Calls."}, []string{"method", "code"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "call_seconds", Help: "Latency."}, []string{"method"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "up", Help: "Up."})
	reg.MustRegister(c, h, g)
	c.WithLabelValues("Fetch", "OK").Add(3)
	h.WithLabelValues("Fetch").Observe(0.5)
	h.WithLabelValues("Fetch").Observe(1)
	g.Set(1)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	s := metricstest.Scrape(t, srv.URL)
	v, ok := s.Get("calls_total", "method", "Fetch", "code", "OK")
	assert.True(t, ok)
	assert.Equal(t, 3.0, v)
	v, _ = s.Get("call_seconds_count", "method", "Fetch")
	assert.Equal(t, 2.0, v)
	v, _ = s.Get("call_seconds_sum", "method", "Fetch")
	assert.Equal(t, 1.5, v)
	v, _ = s.Get("up")
	assert.Equal(t, 1.0, v)
	_, ok = s.Get("calls_total", "method", "Fetch", "code", "Internal")
	assert.False(t, ok)
	assert.Equal(t, `calls_total{code="OK",method="Fetch"}`, metricstest.Series("calls_total", "method", "Fetch", "code", "OK"))
}

func TestParseRejectsGarbage(t *testing.T) {
	_, err := metricstest.Parse(strings.NewReader("not { a metric"))
	require.Error(t, err)
}

func TestParseSummaryAndUntyped(t *testing.T) {
	s, err := metricstest.Parse(strings.NewReader(`# TYPE rpc summary
rpc{quantile="0.5"} 2
rpc_sum 9
rpc_count 4
# TYPE legacy untyped
legacy{kind="a"} 7
`))
	require.NoError(t, err)
	v, ok := s.Get("rpc_count")
	assert.True(t, ok)
	assert.Equal(t, 4.0, v)
	v, _ = s.Get("rpc_sum")
	assert.Equal(t, 9.0, v)
	v, ok = s.Get("legacy", "kind", "a")
	assert.True(t, ok)
	assert.Equal(t, 7.0, v)
}

// recorder is a testing.TB that records Fatalf instead of stopping.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestScrapeFailures(t *testing.T) {
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	r := &recorder{TB: t}
	metricstest.Scrape(r, notFound.URL)
	assert.Contains(t, r.fatal, "status 404 Not Found")

	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	r = &recorder{TB: t}
	metricstest.Scrape(r, gone.URL)
	assert.Contains(t, r.fatal, "connection refused")
}

func TestSeriesNeedsPairs(t *testing.T) {
	assert.PanicsWithValue(t, "metricstest: labels must come in name, value pairs", func() {
		metricstest.Series("calls_total", "method")
	})
}
