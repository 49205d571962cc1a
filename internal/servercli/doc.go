// Package servercli is the administration command line of spiffe-server:
// the bundle, entry, token and agent commands, which speak the admin API
// (package admin) on the server's unix socket. The run command, which
// starts the server, is not here; the program's main handles it and hands
// every other command to [Admin]:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		defer stop()
//		if len(os.Args) > 1 && os.Args[1] == "run" {
//			os.Exit(run(ctx, os.Args[2:]))
//		}
//		os.Exit(servercli.Admin(ctx, os.Args[1:], os.Stdout, os.Stderr))
//	}
//
// Flag names are part of the interface: scripts depend on them. Results go
// to stdout (token generate prints the token alone), errors to stderr as
// one line; the exit code is [ExitOK], [ExitFailure] or [ExitUsage].
package servercli
