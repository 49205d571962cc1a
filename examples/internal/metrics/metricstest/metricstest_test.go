package metricstest_test

import (
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
