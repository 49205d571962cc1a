package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/prometheus/client_golang/prometheus"
)

// newTestRegistry is a registry with one counter, up_total, at 1.
func newTestRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "up_total", Help: "Ups."})
	c.Inc()
	r.MustRegister(c)
	return r
}

func TestHandler(t *testing.T) {
	healthErr := errors.New("agent: not synced\nwith a server yet")
	var health error
	h := Handler(newTestRegistry(), func() error { return health }, nil)

	tests := []struct {
		name, method, path string
		health             error
		status             int
		contentType, body  string
	}{
		{"metrics", "GET", "/metrics", nil, 200, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", "# HELP up_total Ups.\n# TYPE up_total counter\nup_total 1\n"},
		{"healthy", "GET", "/healthz", nil, 200, "text/plain; charset=utf-8", "ok\n"},
		{"unhealthy", "GET", "/healthz", healthErr, 503, "text/plain; charset=utf-8", "agent: not synced with a server yet\n"},
		{"unknown path", "GET", "/", nil, 404, "", ""},
		{"prefix is not enough", "GET", "/metrics/x", nil, 404, "", ""},
		{"unknown path any method", "DELETE", "/debug", nil, 404, "", ""},
		{"post metrics", "POST", "/metrics", nil, 405, "", ""},
		{"put healthz", "PUT", "/healthz", nil, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			health = tt.health
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			assert.Equal(t, tt.status, rec.Code)
			if tt.contentType != "" {
				assert.Equal(t, tt.contentType, rec.Header().Get("Content-Type"))
				assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
			}
			if tt.status == 405 {
				assert.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))
			}
			if tt.body != "" || tt.status == 200 {
				assert.Equal(t, tt.body, rec.Body.String())
			}
		})
	}
}

func TestHandlerWithNilRegistryAndHealth(t *testing.T) {
	h := Handler(nil, nil, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	assert.Equal(t, 200, rec.Code)
	assert.Empty(t, rec.Body.String())
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	assert.Equal(t, 200, rec.Code)
	assert.Equal(t, "ok\n", rec.Body.String())
}

// failing is a collector that cannot collect.
type failing struct{ desc *prometheus.Desc }

func (f failing) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }
func (f failing) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(f.desc, errors.New("store unreachable"))
}

// TestHandlerServesWhatItCan: a collector that fails is left out and
// logged; the other metrics are served.
func TestHandlerServesWhatItCan(t *testing.T) {
	r := newTestRegistry()
	r.MustRegister(failing{prometheus.NewDesc("broken", "Broken.", nil, nil)})
	var logs strings.Builder
	h := Handler(r, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	assert.Equal(t, 200, rec.Code)
	assert.Contains(t, rec.Body.String(), "\nup_total 1\n")
	assert.NotContains(t, rec.Body.String(), "broken")
	assert.Contains(t, logs.String(), "store unreachable")
}

// TestNewRegistry: the Go runtime and process collectors are there.
func TestNewRegistry(t *testing.T) {
	families, err := NewRegistry().Gather()
	require.NoError(t, err)
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	assert.Contains(t, names, "go_goroutines")
	assert.Contains(t, names, "process_start_time_seconds")
}

func TestServe(t *testing.T) {
	r := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "answer", Help: "The answer."})
	g.Set(42)
	r.MustRegister(g)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, err := Serve(ctx, "", Handler(r, nil, nil), nil)
	require.NoError(t, err)
	tcp, ok := addr.(*net.TCPAddr)
	require.True(t, ok)
	assert.True(t, tcp.IP.IsLoopback())
	assert.NotZero(t, tcp.Port)

	res, err := http.Get("http://" + addr.String() + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, string(body), "\nanswer 42\n")

	// Once ctx is done the server shuts down and the port refuses
	// connections (polled: shutdown is asynchronous).
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr.String())
		if err != nil {
			break
		}
		c.Close()
		require.True(t, time.Now().Before(deadline), "the server still accepts after ctx is done")
		time.Sleep(10 * time.Millisecond)
	}
}

func TestServeGivenAddress(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0", Handler(nil, nil, nil), nil)
	require.NoError(t, err)
	// The same port again is taken.
	_, err = Serve(ctx, addr.String(), Handler(nil, nil, nil), nil)
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "metrics: "), err.Error())
}

func TestServeBadAddress(t *testing.T) {
	_, err := Serve(t.Context(), "not an address", Handler(nil, nil, nil), nil)
	require.Error(t, err)
}
