package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/examples/internal/version"
	"github.com/spiffekit/spiffekit/workloadapi"
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

// A clientCommand is a command of spiffe-agent other than run: its words
// after the program name, what it does, and the function that runs it with
// its flags.
type clientCommand struct {
	words   string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// clientCommands are the commands besides run, in the order of the usage.
var clientCommands = []clientCommand{
	{"api fetch x509", "fetch this process's X509-SVIDs from the Workload API (also: api fetch)", fetchX509Command},
	{"api fetch jwt", "fetch JWT-SVIDs for one or more audiences", fetchJWTCommand},
	{"api fetch wit", "fetch this process's WIT-SVIDs (agents run with -wit-svids)", fetchWITCommand},
	{"api validate jwt", "have the Workload API validate a JWT-SVID", validateJWTCommand},
	{"api watch", "print this process's X509-SVIDs each time they change", watchCommand},
	{"healthcheck", "check that the Workload API on a socket answers", healthcheckCommand},
}

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
	switch {
	case len(args) == 0:
		usage(stderr)
		return ExitUsage
	case isHelp(args[0]):
		usage(stdout)
		return ExitOK
	case args[0] == "run":
		return runCommand(ctx, args[1:], stdout, stderr)
	case args[0] == "version" || version.IsFlag(args[0]):
		return printVersion(args[1:], stdout, stderr)
	}
	// The longest command whose words begin args; "api fetch" alone, as
	// SPIRE has it, is "api fetch x509".
	if len(args) >= 2 && args[0] == "api" && args[1] == "fetch" && (len(args) == 2 || strings.HasPrefix(args[2], "-") && !isHelp(args[2])) {
		args = append([]string{"api", "fetch", "x509"}, args[2:]...)
	}
	for _, c := range clientCommands {
		words := strings.Fields(c.words)
		if len(args) >= len(words) && slices.Equal(args[:len(words)], words) {
			return c.run(ctx, args[len(words):], stdout, stderr)
		}
	}
	// A prefix of commands ("api", "api fetch"): its help, or its usage
	// as an error.
	var prefix []string
	for i := 0; i < len(args) && !strings.HasPrefix(args[i], "-") && !isHelp(args[i]); i++ {
		prefix = append(prefix, args[i])
	}
	if subs := commandsUnder(prefix); len(prefix) > 0 && len(subs) > 0 {
		if len(prefix) < len(args) && isHelp(args[len(prefix)]) {
			groupUsage(stdout, prefix, subs)
			return ExitOK
		}
		if len(prefix) == len(args) || isHelp(args[len(prefix)]) || strings.HasPrefix(args[len(prefix)], "-") {
			groupUsage(stderr, prefix, subs)
			return ExitUsage
		}
	}
	fmt.Fprintf(stderr, "spiffe-agent: unknown command %q\n", strings.Join(args[:max(1, len(prefix))], " "))
	usage(stderr)
	return ExitUsage
}

// printVersion answers "spiffe-agent version" and "spiffe-agent -version":
// the program's module version and VCS revision.
func printVersion(args []string, stdout, stderr io.Writer) int {
	cmd := cmdline.New("spiffe-agent version", "Prints the version of spiffe-agent and the VCS revision it was built from.")
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return code
	}
	version.Print(stdout, "spiffe-agent")
	return ExitOK
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// commandsUnder returns the client commands whose words begin with prefix
// and go on after it.
func commandsUnder(prefix []string) []clientCommand {
	var out []clientCommand
	for _, c := range clientCommands {
		words := strings.Fields(c.words)
		if len(words) > len(prefix) && slices.Equal(words[:len(prefix)], prefix) {
			out = append(out, c)
		}
	}
	return out
}

func groupUsage(w io.Writer, prefix []string, cmds []clientCommand) {
	fmt.Fprintf(w, "Usage: spiffe-agent %s <subcommand> [flags]\n\nSubcommands:\n", strings.Join(prefix, " "))
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-18s  %s\n", c.words, c.summary)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: spiffe-agent <command> [flags]

Commands:
  run                 run the node agent: attest to the server, serve the Workload API
`)
	for _, c := range clientCommands {
		fmt.Fprintf(w, "  %-18s  %s\n", c.words, c.summary)
	}
	fmt.Fprint(w, `  version             print the version and VCS revision (also -version)

Run "spiffe-agent <command> -h" for its flags. Every flag of run may also be
set by an environment variable (`+EnvPrefix+`_ and the flag's name in upper
case, '_' for '-') or a key of its -config file. The other commands find the
Workload API socket in -socket, else $`+workloadapi.SocketEnv+`, else $`+EnvPrefix+`_SOCKET.
`)
}
