// Command spiffe-helper keeps SVIDs from the SPIFFE Workload API in files
// and tells a process when they change. It reads the configuration file of
// the SPIFFE project's spiffe-helper (HCL, the same keys), so that an
// existing helper.conf works unchanged. See README.md for every key.
//
//	spiffe-helper -config helper.conf
//	spiffe-helper -config helper.conf -daemon-mode=false   # write once and exit
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiffekit/spiffekit/examples/spiffe-helper/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
