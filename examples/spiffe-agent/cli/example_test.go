package cli_test

import (
	"context"
	"fmt"
	"os"

	"github.com/spiffekit/spiffekit/examples/spiffe-agent/cli"
)

func ExampleMain() {
	ctx := context.Background()

	// A probe: is an agent serving the Workload API on this socket?
	code := cli.Main(ctx, []string{"healthcheck", "-socket", "/nonexistent/api.sock"}, os.Stdout, os.Stdout)
	fmt.Println("exit", code)

	// A configuration that cannot work is refused at once.
	code = cli.Main(ctx, []string{"run", "-trust-domain", "example.org", "-server", "spiffe-server"}, os.Stdout, os.Stdout)
	fmt.Println("exit", code)
	// Output:
	// spiffe-agent healthcheck: unhealthy: no socket at /nonexistent/api.sock
	// exit 1
	// spiffe-agent run: -server "spiffe-server": address spiffe-server: missing port in address
	// Run "spiffe-agent run -h" for help.
	// exit 2
}
