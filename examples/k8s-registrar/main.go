// Command k8s-registrar registers the pods of a Kubernetes cluster with a
// spiffe-server automatically, as spire-controller-manager does with
// ClusterSPIFFEID resources: it runs beside the server (a sidecar sharing
// its admin socket), watches the cluster and keeps entries in step with
// templates read from a JSON file (see README.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spiffekit/spiffekit/examples/internal/version"
	"github.com/spiffekit/spiffekit/examples/k8s-registrar/registrar"
)

func main() {
	if len(os.Args) == 2 && version.IsFlag(os.Args[1]) {
		version.Print(os.Stdout, "k8s-registrar")
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := registrar.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
