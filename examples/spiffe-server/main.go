// Command spiffe-server is an issuing server for a SPIFFE trust domain:
// a self-rotating CA, a registry (SQLite, or PostgreSQL shared by several
// servers), the node API that spiffe-agent attests to, and an admin socket
// with commands to manage entries, join tokens, bundles and agents.
//
//	spiffe-server run -trust-domain example.org -data-dir /var/lib/spiffe-server \
//		-bind 127.0.0.1:8081 -admin-socket /run/spiffe-server/admin.sock
//	spiffe-server token generate -admin-socket /run/spiffe-server/admin.sock
//	spiffe-server entry create -admin-socket ... -parent-id ID -spiffe-id ID -selector unix:uid:1000
//
// Every setting of run is a flag, a SPIFFE_SERVER_* environment variable
// and a key of the JSON configuration file. See README.md beside this file
// for every command, flag, variable and key.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiffekit/spiffekit/examples/spiffe-server/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
