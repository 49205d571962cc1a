// Package cli is the command line of the spiffe-agent program: run
// starts a node agent (package agent) from flags, SPIFFE_AGENT_*
// environment variables and a JSON configuration file, all read by package
// cmdline (each key declared once, in newRunCommand);
// api fetch x509, api fetch jwt, api validate jwt, api watch and
// healthcheck are Workload API clients
// for trying the agent out and for probes. The program's main is a few
// lines around [Main]:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
//		stop()
//		os.Exit(code)
//	}
//
// Flag names, environment variables and configuration keys are part of
// the interface: scripts depend on them. examples/spiffe-agent/README.md documents every one. Results go to
// stdout, logs and errors to stderr (an error as one line); the exit code is
// [ExitOK], [ExitFailure] or [ExitUsage].
package cli
