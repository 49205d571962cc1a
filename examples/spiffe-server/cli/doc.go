// Package cli is the command line of the spiffe-server program: run starts
// an issuing server (package server) from flags, SPIFFE_SERVER_*
// environment variables and a JSON configuration file, all read by package
// cmdline (each key declared once, in newRunCommand); the bundle, entry,
// token, agent and authority commands speak the admin API (package admin)
// on the server's unix socket, the authority commands after SPIRE's
// localauthority ones; the launch commands speak the launcher API (package
// launch) on its own socket, as a launcher does. The program's main is a
// few lines around [Main]:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
//		stop()
//		os.Exit(code)
//	}
//
// Flag names, environment variables and configuration keys are part of
// the interface: scripts depend on them. examples/spiffe-server/README.md
// documents every one.
// Results go to stdout (token generate prints the token alone), logs and
// errors to stderr (an error as one line); the exit code is [ExitOK],
// [ExitFailure] or [ExitUsage].
package cli
