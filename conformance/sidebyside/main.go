// Command sidebyside drives SPIRE and spiffekit through one scenario, side
// by side, and prints their figures and the ratios between them.
//
// It starts each system's own programs (spire-server and spire-agent,
// spiffe-server and spiffe-agent) with equal settings: a SQLite datastore,
// join_token node attestation, the unix workload attestor, everything on
// 127.0.0.1 and unix sockets in a temporary directory. One go-spiffe v2.9.0
// Workload API client measures both. The systems take turns within each
// round (a fresh server and agent each time), so that a change in the
// machine's load falls on both; the figures are medians over the rounds.
//
// Building SPIRE takes about ten minutes; scripts/sidebyside builds it once
// from the Go module proxy (module spire/ beside this one, so that SPIRE is
// built with exactly the dependency versions of its release) and runs this
// program. See docs/PERFORMANCE.md.
//
// Usage:
//
//	sidebyside -spire-bin DIR -spiffekit-bin DIR [-rounds 4] [-systems spire,spiffekit,spiffekit-skip-hash]
//
// Run it with -h for the scenario's sizes. Every program's output goes to a
// log file in its round's directory (-keep keeps them).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.spireBin, "spire-bin", "", "directory holding spire-server and spire-agent")
	flag.StringVar(&cfg.spiffekitBin, "spiffekit-bin", "", "directory holding spiffe-server and spiffe-agent")
	flag.IntVar(&cfg.rounds, "rounds", 4, "rounds; the systems take turns within each")
	systems := flag.String("systems", "spire,spiffekit,spiffekit-skip-hash",
		"systems to run, in turn: spire, spiffekit (defaults), spiffekit-skip-hash (-unix-skip-hash), spiffekit-gogcN (the agent with GOGC=N, a number or off; its default is 50), spiffekit-procs1 (the agent with GOMAXPROCS=1), spiffekit-on-demand (-mint-on-demand)")
	flag.IntVar(&cfg.entries, "entries", 10000, "entries of the large batch (its agent's, none for this process)")
	flag.IntVar(&cfg.callerEntries, "caller-entries", 100, "entries for this process within the large batch")
	flag.IntVar(&cfg.fetches, "fetches", 2000, "fetches of the one-client latency runs")
	flag.IntVar(&cfg.clients, "clients", 50, "clients of the concurrent latency runs")
	flag.IntVar(&cfg.perClient, "per-client", 60, "fetches per client in the concurrent runs")
	flag.IntVar(&cfg.propagations, "propagations", 10, "entries created one at a time, each timed until the workload holds its SVID")
	flag.IntVar(&cfg.signBatch, "sign-batch", 500, "CSRs per node-protocol signing request")
	flag.IntVar(&cfg.signTotal, "sign-total", 4000, "X509-SVIDs signed through the node protocol per system and round")
	flag.StringVar(&cfg.workDir, "work-dir", "", "where each run's directories go (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work directory (its logs) at the end")
	flag.Parse()
	if cfg.spireBin == "" || cfg.spiffekitBin == "" {
		log.Fatal("sidebyside: -spire-bin and -spiffekit-bin are required")
	}
	for _, s := range strings.Split(*systems, ",") {
		switch s = strings.TrimSpace(s); s {
		case "spire", "spiffekit", "spiffekit-skip-hash", "spiffekit-procs1", "spiffekit-on-demand":
			cfg.systems = append(cfg.systems, s)
		default:
			if _, ok := gogcOf(s); ok {
				cfg.systems = append(cfg.systems, s)
				continue
			}
			log.Fatalf("sidebyside: unknown system %q", s)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("sidebyside: %v", err)
	}
}

type config struct {
	spireBin, spiffekitBin string
	systems                []string
	rounds                 int
	entries, callerEntries int
	fetches                int
	clients, perClient     int
	propagations           int
	signBatch, signTotal   int
	workDir                string
	keep                   bool
}

func run(ctx context.Context, cfg config) error {
	dir := cfg.workDir
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "sidebyside-"); err != nil {
			return err
		}
	}
	if !cfg.keep && cfg.workDir == "" {
		defer os.RemoveAll(dir)
	} else {
		log.Printf("work directory: %s", dir)
	}
	load := startLoadSampler(ctx)
	start := time.Now()
	results := make(map[string][]figures)
	for round := range cfg.rounds {
		for k := range cfg.systems {
			// Alternate who goes first, so that neither always meets a
			// machine still busy with the other's teardown.
			name := cfg.systems[(k+round)%len(cfg.systems)]
			sys := newSystem(name, cfg)
			rdir := fmt.Sprintf("%s/r%d-%s", dir, round, name)
			log.Printf("round %d: %s", round+1, name)
			f, err := runScenario(ctx, cfg, sys, rdir)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, name, err)
			}
			results[name] = append(results[name], f)
			log.Printf("round %d: %s done: %s", round+1, name, f.summary())
		}
	}
	ls := load.stop()
	report(os.Stdout, cfg, results, ls, time.Since(start))
	return nil
}

// machine describes where the run happened, for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s/%s, %s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH, runtime.Version())
}
