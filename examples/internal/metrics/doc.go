// Package metrics is a small Prometheus exporter for the spiffe-server and
// spiffe-agent programs: counters and gauges kept in a [Registry], written in
// the Prometheus text exposition format 0.0.4, and an HTTP handler serving
// them at /metrics beside a /healthz health check.
//
// It implements only what the programs need (no labels, no histograms) with
// the standard library alone.
//
// # Usage
//
//	reg := metrics.New()
//	requests := reg.Counter("spiffe_server_requests_total", "Requests served.")
//	reg.GaugeFunc("spiffe_server_entries", "Registration entries.", func() float64 {
//		return float64(store.Len())
//	})
//	requests.Inc()
//
//	h := metrics.Handler(reg, func() error { return srv.Healthy() })
//	addr, err := metrics.Serve(ctx, "127.0.0.1:9988", h, logger)
//	// GET http://<addr>/metrics and /healthz until ctx is done.
//
// # Invalid names
//
// Metric names are constants chosen by the program, so a bad one is a bug,
// but an exporter is not worth crashing a server for: a metric whose name does
// not match [a-zA-Z_:][a-zA-Z0-9_:]*, or whose name is already taken by a
// metric of another kind, is not exported. The registering call still returns
// a working metric (so callers need no nil checks), and [Registry.Err]
// reports every such mistake, for a test to assert it is nil.
package metrics
