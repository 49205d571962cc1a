package cli

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/examples/internal/version"
)

// Exit codes of [Main].
const (
	// ExitOK: the files were written (non-daemon mode), daemon mode was
	// stopped by its context (SIGINT, SIGTERM), or -h printed the help.
	ExitOK = cmdline.ExitOK
	// ExitFailure: the files could not be written (non-daemon mode), or
	// daemon mode could not go on; one line on stderr says why.
	ExitFailure = cmdline.ExitFailure
	// ExitUsage: a bad flag, or a configuration file that cannot be read
	// or is wrong; stderr says which key.
	ExitUsage = cmdline.ExitUsage
)

const help = `Keeps X.509 and JWT SVIDs from the SPIFFE Workload API in files, as
spiffe-helper does, reading spiffe-helper's HCL configuration file. In daemon
mode (the default) it rewrites the files at each rotation and starts or
signals a process; otherwise it writes them once and exits.`

// Main runs the spiffe-helper command line: args are the arguments after
// the program name ("-config", "helper.conf", "-daemon-mode=false"). Logs
// and errors go to stderr, the asked-for help to stdout; the process of
// cmd writes to stdout and stderr. It returns the exit code: [ExitOK],
// [ExitFailure] or [ExitUsage]. Daemon mode runs until ctx is done; the
// program's main derives ctx from signal.NotifyContext, so that SIGINT and
// SIGTERM stop it cleanly.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return main(ctx, args, stdout, stderr, Options{})
}

// main is Main with options for tests.
func main(ctx context.Context, args []string, stdout, stderr io.Writer, opts Options) int {
	cmd := cmdline.New("spiffe-helper", help)
	var path string
	var daemon, showVersion bool
	cmd.String(&path, "config", "helper.conf", "configuration `file` (HCL, spiffe-helper's keys)")
	cmd.Bool(&daemon, "daemon-mode", true, "keep the files fresh until stopped; false: write them once and exit\n(overrides daemon_mode of the file)")
	cmd.Bool(&showVersion, "version", false, "print the version and VCS revision, and exit")
	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
		return code
	}
	if showVersion {
		version.Print(stdout, "spiffe-helper")
		return ExitOK
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		return cmd.Misuse(stderr, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var daemonFlag *bool
	if cmd.Set("daemon-mode") {
		daemonFlag = &daemon
	}
	warn := func(msg string) { log.Warn(msg) }
	if opts.Addr, err = cfg.Resolve(daemonFlag, os.Getenv, warn); err != nil {
		return cmd.Misuse(stderr, err)
	}
	opts.Logger, opts.Stdout, opts.Stderr = log, stdout, stderr
	h := New(cfg, opts)
	if *cfg.DaemonMode {
		err = h.Run(ctx)
	} else {
		err = h.Once(ctx)
	}
	if err != nil {
		return cmd.Fail(stderr, err)
	}
	return ExitOK
}
