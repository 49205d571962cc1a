// Command oidc-discovery-provider publishes the JWT keys of a SPIFFE trust
// domain as an OpenID Connect discovery document and JWKS, so that OIDC
// relying parties validate JWT-SVIDs. It reads the configuration file of
// SPIRE's provider (see README.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiffekit/spiffekit/examples/internal/version"
	"github.com/spiffekit/spiffekit/examples/oidc-discovery-provider/provider"
)

func main() {
	if len(os.Args) == 2 && version.IsFlag(os.Args[1]) {
		version.Print(os.Stdout, "oidc-discovery-provider")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := provider.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
