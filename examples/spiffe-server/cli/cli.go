package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/internal/apiclient"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry"
)

// DefaultAdminSocket is the admin socket a command uses when it is given
// neither -admin-socket nor AdminSocketEnv.
const DefaultAdminSocket = "/run/spiffe-server/admin.sock"

// AdminSocketEnv is the environment variable that names the admin socket
// of every command but run when -admin-socket is not given. It is also
// the variable of run's -admin-socket, so that one setting serves both.
const AdminSocketEnv = EnvPrefix + "_ADMIN_SOCKET"

// Exit codes of [Main].
const (
	// ExitOK: the command succeeded, or printed the help asked for with
	// -h, or run was stopped by its context (SIGINT or SIGTERM) and shut
	// down cleanly.
	ExitOK = cmdline.ExitOK
	// ExitFailure: the server refused or failed the request, could not be
	// reached, or could not start; one line on stderr says why.
	ExitFailure = cmdline.ExitFailure
	// ExitUsage: an unknown command or flag, or a flag, environment
	// variable or configuration file key that is missing or wrong; stderr
	// says which.
	ExitUsage = cmdline.ExitUsage
)

// command is one subcommand: its flags are declared by setup, which
// returns the action to run once they are parsed.
type command struct {
	name    string
	summary string
	help    string // more about the command, printed in its usage after the summary
	setup   func(cmd *cmdline.Command) action
	// launcher: the command calls the launcher API (-launcher-socket),
	// not the admin API (-admin-socket).
	launcher bool
}

// A call is one run of a command: its parsed flags (to tell which were
// given), the admin client (or the launcher API's, for the launch
// commands), standard input, output and error, and whether the output is
// JSON (-output json).
type call struct {
	cmd      *cmdline.Command
	client   *admin.Client
	launcher *launch.Client
	in       io.Reader
	out      io.Writer
	err      io.Writer // for what is said besides the result
	json     bool
}

// An action runs a command once its flags are parsed.
type action = func(ctx context.Context, c *call) error

// print writes v as JSON for -output json, else calls pretty.
func (c *call) print(v any, pretty func(w io.Writer)) error {
	if c.json {
		return printJSON(c.out, v)
	}
	pretty(c.out)
	return nil
}

// usageError is a problem with the arguments, found after parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

var groups = map[string][]command{
	"bundle":         bundleCommands,
	"federation":     federationCommands,
	"entry":          entryCommands,
	"token":          tokenCommands,
	"agent":          agentCommands,
	"authority":      authorityCommands,
	"authority x509": authorityKindCommands(registry.AuthorityX509),
	"authority jwt":  authorityKindCommands(registry.AuthorityJWT),
	"authority wit":  authorityKindCommands(registry.AuthorityWIT),
	"launch":         launchCommands,
	"x509":           x509Commands,
	"jwt":            jwtCommands,
}

// Admin runs one administration command of spiffe-server: every command
// but run, which starts the server itself. args are the command line after
// the program name, e.g. {"entry", "show", "-admin-socket", path,
// "-entry-id", id}. Results and asked-for help go to stdout, errors to
// stderr. It returns the exit code: [ExitOK], [ExitFailure] when the server
// refused or failed the request (one line on stderr), or [ExitUsage] for an
// unknown command or a bad flag, including "run" (see [Main]).
func Admin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, args, os.Stdin, stdout, stderr)
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// adminCommand is Admin reading stdin from the given reader.
func adminCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	if isHelp(args[0]) {
		usage(stdout)
		return ExitOK
	}
	if args[0] == healthcheck.name {
		return runCommand(ctx, "", healthcheck, args[1:], stdin, stdout, stderr)
	}
	group := args[0]
	cmds, ok := groups[group]
	if !ok {
		fmt.Fprintf(stderr, "spiffe-server: unknown command %q\n", group)
		usage(stderr)
		return ExitUsage
	}
	// "authority x509", "authority jwt" and "authority wit" are groups of
	// their own.
	if len(args) >= 2 {
		if sub, ok := groups[group+" "+args[1]]; ok {
			group, cmds, args = group+" "+args[1], sub, args[1:]
		}
	}
	switch {
	case len(args) < 2:
		groupUsage(stderr, group, cmds)
		return ExitUsage
	case isHelp(args[1]):
		groupUsage(stdout, group, cmds)
		return ExitOK
	}
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == args[1] })
	if i < 0 {
		fmt.Fprintf(stderr, "spiffe-server: unknown command %q\n", group+" "+args[1])
		groupUsage(stderr, group, cmds)
		return ExitUsage
	}
	return runCommand(ctx, group, cmds[i], args[2:], stdin, stdout, stderr)
}

func runCommand(ctx context.Context, group string, cmd command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	help := cmd.summary
	if cmd.help != "" {
		help += "\n\n" + cmd.help
	}
	c := cmdline.New(strings.Join(strings.Fields("spiffe-server "+group+" "+cmd.name), " "), help)
	var socket, output string
	if cmd.launcher {
		c.String(&socket, "launcher-socket", DefaultLauncherSocket, "`path` of the server's launcher API socket (launcher.socket_path)").
			Alias("socketPath").Env(LauncherSocketEnv)
	} else {
		c.String(&socket, "admin-socket", DefaultAdminSocket, "`path` of the server's admin socket").
			Alias("socketPath").Env(AdminSocketEnv)
	}
	c.String(&output, "output", "pretty", "output `format`: pretty, or json (see README.md for its fields)")
	action := cmd.setup(c)
	if code, ok := c.Parse(args, stdout, stderr); !ok {
		return code
	}
	if output != "pretty" && output != "json" {
		return c.Misuse(stderr, fmt.Errorf("-output must be pretty or json, not %q", output))
	}
	cl := &call{cmd: c, in: stdin, out: stdout, err: stderr, json: output == "json"}
	if cmd.launcher {
		cl.launcher = launch.Dial(socket)
		defer cl.launcher.Close()
	} else {
		cl.client = admin.Dial(socket)
		defer cl.client.Close()
	}
	err := action(ctx, cl)
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		return c.Misuse(stderr, ue)
	case isDenied(err):
		// The socket's permissions refused the caller: the error says
		// which socket and what to do.
		return c.Fail(stderr, err)
	case errors.Is(err, admin.ErrPermissionDenied):
		return c.Fail(stderr, fmt.Errorf("%w (run it as root or as the server's user)", err))
	case errors.Is(err, launch.ErrPermissionDenied):
		return c.Fail(stderr, fmt.Errorf("%w (run it as a uid of the launcher section's allowed_uids)", err))
	case errors.Is(err, launch.ErrRateLimited):
		return c.Fail(stderr, fmt.Errorf("%w (more launches at once than the launcher section's rate and burst allow; try again in a moment)", err))
	case cmd.launcher && errors.Is(err, syscall.ENOENT), cmd.launcher && errors.Is(err, syscall.ECONNREFUSED):
		return c.Fail(stderr, fmt.Errorf("%w (is the server running, with a launcher section whose socket_path is %s?)", err, socket))
	default:
		return c.Fail(stderr, err)
	}
}

// isDenied reports whether err is that of a connection the socket's
// permissions refused, before the server could check the caller's uid.
func isDenied(err error) bool {
	_, ok := errors.AsType[*apiclient.DeniedError](err)
	return ok
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: spiffe-server <command> <subcommand> [flags]

Commands:
  run                       start the server
  healthcheck               exit 0 if the server answers on its admin socket and is healthy
  bundle show|set|list|delete
  federation create|update|list|show|delete
  entry create|update|show|list|count|delete
  token generate
  agent list|show|count|evict|ban
  authority list
  authority x509|jwt|wit show|prepare|activate|taint|revoke
  x509 mint, jwt mint
  launch create|show|end    a launcher's launches (on the launcher API's socket)
  version                   print the version and VCS revision (also -version)

Every command but run and launch takes -admin-socket PATH (default
$`+AdminSocketEnv+`, else `+DefaultAdminSocket+`), and the launch
commands -launcher-socket PATH (default $`+LauncherSocketEnv+`, else
`+DefaultLauncherSocket+`); all take -output pretty|json.
Run "spiffe-server run -h" or "spiffe-server <command> <subcommand> -h" for
the flags of a command. Every flag of run may also be set by an environment
variable (`+EnvPrefix+`_ and the flag's name in upper case, '_' for '-') or a
key of its -config file.
`)
}

func groupUsage(w io.Writer, group string, cmds []command) {
	fmt.Fprintf(w, "Usage: spiffe-server %s <subcommand> [flags]\n\nSubcommands:\n", group)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	if group == "authority" {
		fmt.Fprintf(w, "  %-8s %s\n  %-8s %s\n  %-8s %s\n", "x509", "show|prepare|activate|taint|revoke: the X.509 CAs",
			"jwt", "show|prepare|activate|taint|revoke: the JWT keys",
			"wit", "show|prepare|activate|taint|revoke: the WIT keys (servers run with -wit-svids)")
	}
}

// timeString formats a time for output: UTC, RFC 3339.
func timeString(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
