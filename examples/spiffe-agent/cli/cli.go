package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
)

// Exit codes of [Main].
const (
	// ExitOK: the command succeeded, printed the help asked for with -h,
	// or run was stopped by its context (SIGINT or SIGTERM) and shut down
	// cleanly.
	ExitOK = cmdline.ExitOK
	// ExitFailure: the command failed; one line on stderr says why.
	ExitFailure = cmdline.ExitFailure
	// ExitUsage: no command, an unknown command or flag, or a flag,
	// environment variable or configuration file key that is missing or
	// wrong; stderr says which.
	ExitUsage = cmdline.ExitUsage
)

// Main runs the spiffe-agent command line: args are the arguments after the
// program name, e.g. {"run", "-trust-domain", "example.org", ...} or {"api",
// "fetch", "x509", "-socket", path}. Results and asked-for help go to
// stdout; logs, errors and usage errors to stderr. It returns the exit
// code: [ExitOK], [ExitFailure] or [ExitUsage].
//
// The run command serves until ctx is done; the program's main derives ctx
// from signal.NotifyContext so that SIGINT and SIGTERM shut it down
// gracefully.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheckCommand(ctx, args[1:], stdout, stderr)
	case "api":
		if len(args) >= 3 && args[1] == "fetch" {
			switch args[2] {
			case "x509":
				return fetchX509Command(ctx, args[3:], stdout, stderr)
			case "jwt":
				return fetchJWTCommand(ctx, args[3:], stdout, stderr)
			}
		}
		fmt.Fprintf(stderr, "spiffe-agent: unknown command %q\n", strings.Join(args[:min(len(args), 3)], " "))
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return ExitOK
	default:
		fmt.Fprintf(stderr, "spiffe-agent: unknown command %q\n", args[0])
	}
	usage(stderr)
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: spiffe-agent <command> [flags]

Commands:
  run                 run the node agent: attest to the server, serve the Workload API
  api fetch x509      fetch this process's X509-SVIDs from the Workload API
  api fetch jwt       fetch JWT-SVIDs for one or more audiences
  healthcheck         check that the Workload API on a socket answers

Run "spiffe-agent <command> -h" for its flags. Every flag of run may also be
set by an environment variable (`+EnvPrefix+`_ and the flag's name in upper
case, '_' for '-') or a key of its -config file.
`)
}
