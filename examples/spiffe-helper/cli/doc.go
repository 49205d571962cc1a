// Package cli is the spiffe-helper program: a drop-in for the SPIFFE
// project's spiffe-helper that reads its HCL configuration file
// ([ParseConfig], every key of spiffe-helper) and keeps the X.509 SVID, its
// key and bundle, JWT-SVIDs and the JWT bundles in files, fresh from the
// Workload API (package workloadapi), written atomically. Once every
// configured file has been written it starts the process of cmd, and after
// each later renewal it signals that process and the process of
// pid_file_name ([Helper.Run]); in non-daemon mode it writes the files once
// and exits ([Helper.Once]), as an init container does. The program's
// main is a few lines around [Main]:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
//		code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
//		stop()
//		os.Exit(code)
//	}
//
// examples/spiffe-helper/README.md documents every key. Logs and errors go
// to stderr (an error as one line); the exit code is [ExitOK],
// [ExitFailure] or [ExitUsage].
package cli
