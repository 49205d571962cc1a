package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// DefaultAdminSocket is the admin socket a command uses when it is given no
// -admin-socket flag.
const DefaultAdminSocket = "/run/spiffe-server/admin.sock"

// Exit codes of [Admin].
const (
	// ExitOK: the command succeeded.
	ExitOK = 0
	// ExitFailure: the server refused or failed the request, or it could
	// not be reached; one line on stderr says why.
	ExitFailure = 1
	// ExitUsage: unknown command or flag, or a missing or malformed
	// argument; the usage is printed on stderr.
	ExitUsage = 2
)

// command is one subcommand: its flags are declared by setup, which
// returns the action to run once they are parsed.
type command struct {
	name    string
	summary string
	help    string // more about the command, printed in its usage after the summary
	setup   func(fs *flag.FlagSet) func(ctx context.Context, c *admin.Client, in io.Reader, out io.Writer) error
}

// An action runs a command once its flags are parsed, with the command's
// standard input and output.
type action = func(ctx context.Context, c *admin.Client, in io.Reader, out io.Writer) error

// usageError is a problem with the arguments, found after parsing.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

var groups = map[string][]command{
	"bundle": bundleCommands,
	"entry":  entryCommands,
	"token":  tokenCommands,
	"agent":  agentCommands,
}

// Admin runs one administration command of spiffe-server: every command
// but run, which starts the server itself. args are the command line after
// the program name, e.g. {"entry", "show", "-admin-socket", path,
// "-entry-id", id}. Results go to stdout, errors and usage to stderr. It
// returns the exit code: [ExitOK], [ExitFailure] when the server refused or
// failed the request (one line on stderr), or [ExitUsage] for an unknown
// command or a bad flag, including "run" (the caller handles run before
// calling Admin).
func Admin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return adminCommand(ctx, args, os.Stdin, stdout, stderr)
}

// adminCommand is Admin reading stdin from the given reader.
func adminCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	if args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return ExitOK
	}
	cmds, ok := groups[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "spiffe-server: unknown command %q\n", args[0])
		usage(stderr)
		return ExitUsage
	}
	if len(args) < 2 {
		groupUsage(stderr, args[0], cmds)
		return ExitUsage
	}
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == args[1] })
	if i < 0 {
		fmt.Fprintf(stderr, "spiffe-server: unknown command %q\n", args[0]+" "+args[1])
		groupUsage(stderr, args[0], cmds)
		return ExitUsage
	}
	return runCommand(ctx, args[0], cmds[i], args[2:], stdin, stdout, stderr)
}

func runCommand(ctx context.Context, group string, cmd command, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	name := "spiffe-server " + group + " " + cmd.name
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("admin-socket", DefaultAdminSocket, "path of the server's admin socket")
	action := cmd.setup(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n%s\n\n", name, cmd.summary)
		if cmd.help != "" {
			fmt.Fprintf(stderr, "%s\n\n", cmd.help)
		}
		fmt.Fprintf(stderr, "Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", name, fs.Arg(0))
		fs.Usage()
		return ExitUsage
	}
	c := admin.Dial(*socket)
	defer c.Close()
	err := action(ctx, c, stdin, stdout)
	var ue *usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %s\n", name, ue.msg)
		fs.Usage()
		return ExitUsage
	case errors.Is(err, admin.ErrPermissionDenied):
		fmt.Fprintf(stderr, "Error: %s (run it as root or as the server's user)\n", oneLine(err))
		return ExitFailure
	default:
		fmt.Fprintf(stderr, "Error: %s\n", oneLine(err))
		return ExitFailure
	}
}

// oneLine keeps an error on the one line scripts expect.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Usage: spiffe-server <command> <subcommand> [flags]

Commands:
  run                       start the server
  bundle show|set|list|delete
  entry create|update|show|list|delete
  token generate
  agent list|evict|ban

Every command but run takes -admin-socket PATH (default `+DefaultAdminSocket+`).
Run "spiffe-server <command> <subcommand> -h" for its flags.
`)
}

func groupUsage(w io.Writer, group string, cmds []command) {
	fmt.Fprintf(w, "Usage: spiffe-server %s <subcommand> [flags]\n\nSubcommands:\n", group)
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
}

// Flag types that check their values as they are parsed, so that a bad
// value is a usage error.

type idFlag struct{ id spiffeid.ID }

func (f *idFlag) String() string {
	if f == nil || f.id.IsZero() {
		return ""
	}
	return f.id.String()
}

func (f *idFlag) Set(s string) error {
	id, err := spiffeid.FromString(s)
	if err != nil {
		return err
	}
	f.id = id
	return nil
}

type tdFlag struct{ td spiffeid.TrustDomain }

func (f *tdFlag) String() string {
	if f == nil || f.td.IsZero() {
		return ""
	}
	return f.td.Name()
}

func (f *tdFlag) Set(s string) error {
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		return err
	}
	f.td = td
	return nil
}

type selectorsFlag []attest.Selector

func (f *selectorsFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(*f))
	for i, s := range *f {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

func (f *selectorsFlag) Set(s string) error {
	sel, err := attest.ParseSelector(s)
	if err != nil {
		return err
	}
	*f = append(*f, sel)
	return nil
}

type tdsFlag []spiffeid.TrustDomain

func (f *tdsFlag) String() string {
	if f == nil {
		return ""
	}
	parts := make([]string, len(*f))
	for i, td := range *f {
		parts[i] = td.Name()
	}
	return strings.Join(parts, ",")
}

func (f *tdsFlag) Set(s string) error {
	td, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		return err
	}
	*f = append(*f, td)
	return nil
}

type stringsFlag []string

func (f *stringsFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(*f, ",")
}

func (f *stringsFlag) Set(s string) error {
	*f = append(*f, s)
	return nil
}

// timeString formats a time for output: UTC, RFC 3339.
func timeString(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
