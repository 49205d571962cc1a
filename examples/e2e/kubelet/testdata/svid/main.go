// Command svid is the program of the test's pods: it fetches its X509
// context from the Workload API at the address of -socket, retrying until
// it holds at least one SVID, writes the SPIFFE IDs of its SVIDs (one a
// line), then the time it started and the time it got them (Unix
// nanoseconds, one line each) to the file -out, and runs until SIGTERM or
// SIGINT (it is PID 1 of its container).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spiffekit/spiffekit/workloadapi"
)

func main() {
	started := time.Now()
	socket := flag.String("socket", "unix:///run/spiffe/api.sock", "the Workload API address")
	out := flag.String("out", "", "the file to write the SPIFFE IDs to")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		x, err := workloadapi.FetchX509Context(fctx, workloadapi.WithAddr(*socket))
		cancel()
		if err != nil || len(x.SVIDs) == 0 {
			fmt.Fprintln(os.Stderr, "svid: no SVID yet:", err)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		var b strings.Builder
		for _, s := range x.SVIDs {
			fmt.Fprintln(&b, s.ID)
		}
		fmt.Fprintln(&b, started.UnixNano())
		fmt.Fprintln(&b, time.Now().UnixNano())
		// Written whole and renamed: the test reads it at any time.
		tmp := filepath.Join(filepath.Dir(*out), "."+filepath.Base(*out))
		if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "svid:", err)
			os.Exit(1)
		}
		if err := os.Rename(tmp, *out); err != nil {
			fmt.Fprintln(os.Stderr, "svid:", err)
			os.Exit(1)
		}
		break
	}
	<-ctx.Done()
}
