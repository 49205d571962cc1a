package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
)

// healthcheck is "spiffe-server healthcheck", for probes.
var healthcheck = command{
	name:    "healthcheck",
	summary: "Exits 0 if the server answers on its admin socket and can issue, 1 otherwise.",
	help: `Healthy means the server has an active X.509 CA and its datastore answers.
With -shallow, a server that answers at all is healthy (a liveness probe:
restart what no longer answers); without, it must also be able to issue (a
readiness probe). The command must run as root or as the server's user, as
every command on the admin socket.`,
	setup: healthcheckSetup,
}

// DefaultHealthTimeout bounds healthcheck.
const DefaultHealthTimeout = 5 * time.Second

func healthcheckSetup(cmd *cmdline.Command) action {
	var shallow, verbose bool
	var timeout time.Duration
	cmd.Bool(&shallow, "shallow", false, "healthy if the server answers, whether it can issue or not")
	cmd.Bool(&verbose, "verbose", false, "say what is checked, on stderr")
	cmd.Duration(&timeout, "timeout", DefaultHealthTimeout, "give up after this `duration`")
	return func(ctx context.Context, c *call) error {
		if timeout <= 0 {
			return usagef("-timeout must be positive")
		}
		if verbose {
			fmt.Fprintln(c.err, "checking the server's admin socket")
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		st, err := c.client.Status(ctx)
		if err != nil {
			return fmt.Errorf("unhealthy: %w", err)
		}
		healthy := st.Healthy || shallow
		out := healthJSON{TrustDomain: st.TrustDomain.Name(), Healthy: healthy, Reason: st.Reason}
		if err := c.print(out, func(w io.Writer) {
			if healthy {
				fmt.Fprintf(w, "healthy: the server of %s answered\n", st.TrustDomain.Name())
			}
		}); err != nil {
			return err
		}
		if !healthy {
			return errors.New("unhealthy: " + st.Reason)
		}
		return nil
	}
}

// healthJSON is the output of healthcheck -output json.
type healthJSON struct {
	TrustDomain string `json:"trust_domain"`
	Healthy     bool   `json:"healthy"`
	Reason      string `json:"reason,omitempty"`
}
