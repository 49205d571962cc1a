package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A Namespace is the prefix of a program's metric names, such as
// "spiffekit_server": a metric name is namespace_name. Its methods make
// the program's metric families, with [Buckets] for every histogram.
type Namespace string

// Counter returns a new counter family namespace_name with the given
// labels.
func (ns Namespace) Counter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: string(ns), Name: name, Help: help}, labels)
}

// Gauge returns a new gauge family namespace_name with the given labels.
func (ns Namespace) Gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: string(ns), Name: name, Help: help}, labels)
}

// Histogram returns a new histogram family namespace_name with the given
// labels and [Buckets], for a latency in seconds.
func (ns Namespace) Histogram(name, help string, labels ...string) *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: string(ns), Name: name, Help: help, Buckets: Buckets,
	}, labels)
}

// Desc returns the description of namespace_name with the given variable
// labels, for a collector that makes its metrics at each scrape.
func (ns Namespace) Desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(string(ns), "", name), help, labels, nil)
}

// UnixSeconds returns t as a Prometheus timestamp value: seconds since the
// Unix epoch, with a fraction.
func UnixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
