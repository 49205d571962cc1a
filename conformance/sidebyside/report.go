package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// metric is one row of the report: how to read it from a round's figures,
// and how to print it.
type metric struct {
	name  string
	value func(figures) float64
	unit  string // "MiB", "ms", "s", "/s"
}

func metrics(cfg config) []metric {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	mib := func(k int64) float64 { return float64(k) / 1024 }
	n := fmt.Sprintf("%d", cfg.entries)
	return []metric{
		{"agent RSS, idle (one entry)", func(f figures) float64 { return mib(f.agentIdle) }, "MiB"},
		{"agent RSS, " + n + " entries", func(f figures) float64 { return mib(f.agentLoaded) }, "MiB"},
		{"server RSS, idle", func(f figures) float64 { return mib(f.serverIdle) }, "MiB"},
		{"server RSS, " + n + " entries", func(f figures) float64 { return mib(f.serverLoaded) }, "MiB"},
		{"FetchX509SVID, 1 client, p50", func(f figures) float64 { return ms(f.x509One.p50) }, "ms"},
		{"FetchX509SVID, 1 client, p99", func(f figures) float64 { return ms(f.x509One.p99) }, "ms"},
		{fmt.Sprintf("FetchX509SVID, %d clients, p50", cfg.clients), func(f figures) float64 { return ms(f.x509Many.p50) }, "ms"},
		{fmt.Sprintf("FetchX509SVID, %d clients, p99", cfg.clients), func(f figures) float64 { return ms(f.x509Many.p99) }, "ms"},
		{"FetchJWTSVID, 1 client, p50", func(f figures) float64 { return ms(f.jwtOne.p50) }, "ms"},
		{"FetchJWTSVID, 1 client, p99", func(f figures) float64 { return ms(f.jwtOne.p99) }, "ms"},
		{fmt.Sprintf("FetchJWTSVID, %d clients, p50", cfg.clients), func(f figures) float64 { return ms(f.jwtMany.p50) }, "ms"},
		{fmt.Sprintf("FetchJWTSVID, %d clients, p99", cfg.clients), func(f figures) float64 { return ms(f.jwtMany.p99) }, "ms"},
		{"entry create -> workload holds the SVID, p50", func(f figures) float64 { return ms(f.propagation.p50) }, "ms"},
		{"entry create -> workload holds the SVID, max", func(f figures) float64 { return ms(f.propagation.p99) }, "ms"},
		{n + " entries created through the CLI batch", func(f figures) float64 { return ms(f.batchCLI) }, "ms"},
		{fmt.Sprintf("%s entries created -> the %d for this caller served", n, cfg.callerEntries), func(f figures) float64 { return ms(f.callerServed) }, "ms"},
		{"X509-SVIDs signed through the node protocol, one request at a time", func(f figures) float64 { return f.signRate }, "/s"},
		{"X509-SVIDs signed through the node protocol, a request in flight per core", func(f figures) float64 { return f.signPerCore }, "/s"},
		{"raw limit (CSR check + CreateCertificate), same run", func(f figures) float64 { return f.rawRate }, "/s"},
		{"node protocol / raw limit, one request at a time", func(f figures) float64 { return f.signRate / f.rawRate }, ""},
		{"node protocol / raw limit, a request in flight per core", func(f figures) float64 { return f.signPerCore / f.rawRate }, ""},
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func format(v float64, unit string) string {
	switch {
	case unit == "":
		return fmt.Sprintf("%.2f", v)
	case unit == "/s":
		return fmt.Sprintf("%.0f/s", v)
	case v >= 100:
		return fmt.Sprintf("%.0f %s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	return fmt.Sprintf("%.2f %s", v, unit)
}

// report prints the medians over the rounds, with each spiffekit variant's
// ratio to SPIRE, as a markdown table; then every round's figures.
func report(w io.Writer, cfg config, results map[string][]figures, load loadStats, took time.Duration) {
	fmt.Fprintf(w, "\nMachine: %s\n", machine())
	fmt.Fprintf(w, "Run: %d rounds of %s in %v; 1-minute load average during the run: min %.2f, median %.2f, max %.2f\n\n",
		cfg.rounds, strings.Join(cfg.systems, ", "), took.Round(time.Second), load.min, load.median, load.max)
	header := []string{"metric (median of rounds)"}
	for _, s := range cfg.systems {
		header = append(header, s)
		if s != "spire" && slices.Contains(cfg.systems, "spire") {
			header = append(header, s+" / spire")
		}
	}
	fmt.Fprintf(w, "| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, m := range metrics(cfg) {
		row := []string{m.name}
		spire := median(values(results["spire"], m))
		for _, s := range cfg.systems {
			v := median(values(results[s], m))
			row = append(row, format(v, m.unit))
			if s != "spire" && slices.Contains(cfg.systems, "spire") {
				if spire != 0 && m.unit != "" {
					row = append(row, fmt.Sprintf("%.3g", v/spire))
				} else {
					row = append(row, "")
				}
			}
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
	}
	fmt.Fprintf(w, "\nEvery round:\n")
	for _, s := range cfg.systems {
		for i, f := range results[s] {
			var parts []string
			for _, m := range metrics(cfg) {
				parts = append(parts, format(m.value(f), m.unit))
			}
			fmt.Fprintf(w, "%s round %d: %s\n", s, i+1, strings.Join(parts, "; "))
		}
	}
}

func values(fs []figures, m metric) []float64 {
	out := make([]float64, len(fs))
	for i, f := range fs {
		out[i] = m.value(f)
	}
	return out
}
