package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets are the upper bounds, in seconds, of the programs' latency
// histograms: from 0.1 ms (a signing by the local CA) to about 26 s (a
// round trip that timed out), each four times the one before.
var Buckets = prometheus.ExponentialBuckets(0.0001, 4, 10)

// Timeouts of the server that Serve runs.
const (
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers, so that idle half-open connections cannot pile up.
	ReadHeaderTimeout = 5 * time.Second
	// ShutdownTimeout bounds the graceful shutdown once the context of
	// Serve is done; connections still open after it are closed.
	ShutdownTimeout = 5 * time.Second
)

// NewRegistry returns a Prometheus registry holding the Go runtime
// collector (go_*) and the process collector (process_*), for a program
// to register its own metrics beside them.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler returns the HTTP handler of a program's metrics and health:
//
//   - GET /metrics: what g gathers, served by promhttp in the format the
//     scraper asks for (the text format by default); a nil g serves an
//     empty exposition. A collector that fails is left out, the rest is
//     served, and the failure is logged to log.
//   - GET /healthz: 200 "ok\n" if health returns nil (or health is nil),
//     else 503 with the error's text on one line.
//   - any other path: 404.
//   - a method other than GET or HEAD on those two paths: 405, with an
//     Allow header.
//
// Responses are never cached. The handler is safe for concurrent use. A
// nil log discards.
func Handler(g prometheus.Gatherer, health func() error, log *slog.Logger) http.Handler {
	if g == nil {
		g = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	metrics := promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/metrics" && req.URL.Path != "/healthz" {
			http.NotFound(w, req)
			return
		}
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if req.URL.Path == "/healthz" {
			serveHealth(w, health)
			return
		}
		metrics.ServeHTTP(w, req)
	})
}

func serveHealth(w http.ResponseWriter, health func() error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	var err error
	if health != nil {
		err = health()
	}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(strings.Fields(err.Error()), " "))
		return
	}
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "ok\n")
}

// Serve listens on addr ("host:port"; empty means "127.0.0.1:0", a free
// loopback port) and serves h there in the background until ctx is done,
// then shuts the server down gracefully, waiting at most [ShutdownTimeout]
// for requests under way. It returns the address it is bound to, once the
// listener accepts connections. The server bounds header read time
// ([ReadHeaderTimeout]) and header size; it does not log requests. A nil
// log discards the server's errors.
//
// Metrics and health tell an observer about the program, not secrets, but
// they are unauthenticated: listen on loopback unless something in front
// restricts who can reach them.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lc net.ListenConfig
	lis, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			srv.Close()
		}
		<-served
	}()
	return lis.Addr(), nil
}
