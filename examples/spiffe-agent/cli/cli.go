package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit codes of [Main].
const (
	// ExitOK: the command succeeded, or run was stopped by its context
	// (SIGINT or SIGTERM) and shut down cleanly.
	ExitOK = 0
	// ExitFailure: the command failed; one line on stderr says why.
	ExitFailure = 1
	// ExitUsage: no command, an unknown command or flag, or -h; the usage
	// is printed on stderr.
	ExitUsage = 2
)

// Main runs the spiffe-agent command line: args are the arguments after the
// program name, e.g. {"run", "-trust-domain", "example.org", ...} or {"api",
// "fetch", "x509", "-socket", path}. Results go to stdout; logs, errors and
// usage to stderr. It returns the exit code: [ExitOK], [ExitFailure] or
// [ExitUsage].
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
		return runCommand(ctx, args[1:], stderr)
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

Run "spiffe-agent <command> -h" for its flags.
`)
}

// newFlagSet returns a flag set for a command, printing its usage and
// parse errors to stderr.
func newFlagSet(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, and reports false (after printing the usage) if
// they are not valid, or if they ask for help; the command then exits with
// ExitUsage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) bool {
	if err := fs.Parse(args); err != nil {
		return false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return false
	}
	return true
}

// fail prints err as the one line scripts expect and returns ExitFailure.
func fail(stderr io.Writer, cmd string, err error) int {
	// The command name says where the message comes from; the package
	// prefix of our own errors would only repeat it.
	fmt.Fprintf(stderr, "%s: %s\n", cmd, strings.TrimPrefix(oneLine(err), "cli: "))
	return ExitFailure
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
