// Package cmdline parses the command lines of the example programs
// (spiffe-server, spiffe-agent) with github.com/peterbourgon/ff/v3, so that
// both programs read flags, environment variables and JSON configuration
// files one way.
//
// Each key of a command is declared once, as a flag. A configurable command
// (see [Command.Configurable]) also reads every key from an environment
// variable, PREFIX_ and the flag's name in upper case with '_' for '-', and
// from a -config JSON file, under the flag's name with '_' for '-' unless
// [Key.File] names it otherwise (a dotted name is a key inside nested
// objects). A flag wins over the environment, which wins over the file. A
// part of the file that does not fit flags, such as a list of objects, is a
// typed [Command.Section], read from the file only.
//
//	cmd := cmdline.New("spiffe-agent run", "Runs the node agent.")
//	cmd.Configurable("SPIFFE_AGENT")
//	cmd.String(&cfg.TrustDomain, "trust-domain", "", "trust `domain` (required)")
//	cmd.Var(cmdline.NewList(&cfg.Servers, cmdline.Text, ","), "server", "server `host:port` (repeatable)").File("servers")
//	if code, ok := cmd.Parse(args, stdout, stderr); !ok {
//		return code
//	}
//
// A key may have further flag names, such as SPIRE's spellings
// ([Key.Alias]: "-parentID" beside "-parent-id"), and environment
// variables of its own, read when no other source gives it a value
// ([Key.Env]: the Workload API socket of SPIFFE_ENDPOINT_SOCKET), also on
// a command that is not configurable.
//
// # Exit codes
//
// Both programs exit with [ExitOK], [ExitFailure] (the operation failed) or
// [ExitUsage] (the command line, environment or configuration file is
// wrong). Asking for help (-h) prints the usage on stdout and is not an
// error.
package cmdline
