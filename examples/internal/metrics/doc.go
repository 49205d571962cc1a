// Package metrics is what the spiffe-server and spiffe-agent programs share
// to export their Prometheus metrics: a registry with the Go runtime and
// process collectors, the metric families of a program's [Namespace] (its
// histograms with the buckets of their latencies), and the
// HTTP endpoint that serves the metrics at /metrics (with promhttp, of
// prometheus/client_golang) beside a /healthz health check.
//
// The metrics themselves are each program's: they implement the observer
// interfaces of the library packages (nodeserver.Observer, issuer.Observer,
// endpoint.Observer) and read their Stats at each scrape. The library
// depends on no metrics package; only the programs import Prometheus.
//
// # Usage
//
//	const ns metrics.Namespace = "spiffekit_server"
//	reg := metrics.NewRegistry()
//	signed := ns.Counter("svids_signed_total", "SVIDs signed.", "svid_type", "outcome")
//	reg.MustRegister(signed)
//
//	h := metrics.Handler(reg, func() error { return srv.Healthy(ctx) }, logger)
//	addr, err := metrics.Serve(ctx, "127.0.0.1:9988", h, logger)
//	// GET http://<addr>/metrics and /healthz until ctx is done.
package metrics
