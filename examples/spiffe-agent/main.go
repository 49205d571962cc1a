// Command spiffe-agent is a SPIFFE node agent: it attests its node to a
// spiffe-server, keeps the registration entries it is authorized for in
// sync, and serves their SVIDs to local workloads on the Workload API
// socket. Every setting of run is a flag, a SPIFFE_AGENT_* environment
// variable and a key of the JSON configuration file. See README.md for its
// commands, flags, variables and keys.
//
//	spiffe-agent run -trust-domain example.org -server 127.0.0.1:8081 \
//		-trust-bundle bundle.pem -join-token TOKEN \
//		-socket /run/spiffe-agent/api.sock -data-dir /var/lib/spiffe-agent
//	spiffe-agent api fetch x509 -socket /run/spiffe-agent/api.sock
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiffekit/spiffekit/examples/spiffe-agent/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
