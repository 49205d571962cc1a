package cli

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/launch"
)

// validCalls are, for every admin command, flags and standard input that
// make a well-formed request: with no server to answer it, each must fail
// with ExitFailure, never ExitUsage.
var validCalls = map[string]struct {
	args  []string
	stdin string
}{
	"bundle show":    {},
	"bundle set":     {args: []string{"-id", "other.org"}, stdin: "{}"},
	"bundle list":    {},
	"bundle delete":  {args: []string{"-id", "other.org", "-mode", "dissociate"}},
	"entry create":   {args: []string{"-spiffeID", "spiffe://example.org/a", "-parentID", "spiffe://example.org/n", "-selector", "a:b"}},
	"entry update":   {args: []string{"-entryID", "x", "-hint", "h"}},
	"entry show":     {args: []string{"-entryID", "x"}},
	"entry list":     {},
	"entry count":    {args: []string{"-selector", "a:b", "-matchSelectorsOn", "exact"}},
	"entry delete":   {args: []string{"-entryID", "x"}},
	"token generate": {},
	"x509 mint":      {args: []string{"-spiffeID", "spiffe://example.org/a", "-dns", "a.example.org", "-ttl", "1h"}},
	"jwt mint":       {args: []string{"-spiffeID", "spiffe://example.org/a", "-audience", "db"}},
	"agent list":     {},
	"agent show":     {args: []string{"-spiffeID", "spiffe://example.org/spiffekit/agent/x"}},
	"agent count":    {},
	"agent evict":    {args: []string{"-spiffeID", "spiffe://example.org/spiffekit/agent/x"}},
	"agent ban":      {args: []string{"-spiffeID", "spiffe://example.org/spiffekit/agent/x"}},
	"authority list": {},
	"federation create": {args: []string{"-trustDomain", "other.org", "-bundleEndpointURL", "https://other.org/",
		"-bundleEndpointProfile", "https_web"}},
	"federation update": {args: []string{"-trustDomain", "other.org", "-bundleEndpointURL", "https://other.org/",
		"-bundleEndpointProfile", "https_spiffe", "-endpointSpiffeID", "spiffe://other.org/s"}},
	"federation list":         {},
	"federation show":         {args: []string{"-trustDomain", "other.org"}},
	"federation delete":       {args: []string{"-id", "other.org"}},
	"federation refresh":      {args: []string{"-id", "other.org"}},
	"authority x509 show":     {},
	"authority x509 prepare":  {},
	"authority x509 activate": {},
	"authority x509 taint":    {args: []string{"-authorityID", "ab"}},
	"authority x509 revoke":   {args: []string{"-authorityID", "ab"}},
	"authority jwt show":      {},
	"authority jwt prepare":   {},
	"authority jwt activate":  {},
	"authority jwt taint":     {args: []string{"-authorityID", "ab"}},
	"authority jwt revoke":    {args: []string{"-authorityID", "ab"}},
	"authority wit show":      {},
	"authority wit prepare":   {},
	"authority wit activate":  {},
	"authority wit taint":     {args: []string{"-authorityID", "ab"}},
	"authority wit revoke":    {args: []string{"-authorityID", "ab"}},
}

// launchCalls are, for every launch command, flags that make a
// well-formed request of the launcher API: with no launcher to answer it,
// or one that refuses the caller, each must fail with ExitFailure, never
// ExitUsage.
var launchCalls = map[string]struct {
	args  []string
	stdin string
}{
	"launch create": {args: []string{"-spiffe-id", "spiffe://example.org/sandbox/1", "-ttl", "10m", "-hint", "job"}},
	"launch show":   {args: []string{"-launch-id", "0123456789abcdef0123456789abcdef"}},
	"launch end":    {args: []string{"-launch-id", "0123456789abcdef0123456789abcdef"}},
}

// An api is the socket a command talks to, as its walk expects it: the
// flag and variable naming it, and what a command says when nothing
// listens there.
type api struct {
	flag, env   string
	unreachable func(socket string) string
}

var (
	adminAPI = api{flag: "-admin-socket", env: AdminSocketEnv,
		unreachable: func(s string) string { return "cannot reach the server at " + s }}
	launcherAPI = api{flag: "-launcher-socket", env: LauncherSocketEnv,
		unreachable: func(s string) string {
			return "cannot reach the launcher API at " + s + ": "
		}}
)

// walkRun runs one command line of spiffe-server's administration.
func walkRun(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := adminCommand(t.Context(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// walkGroup checks a group alone: it exits 2 with its usage, and with
// -h, --help or help exits 0 with it on stdout.
func walkGroup(t *testing.T, group string) {
	t.Helper()
	words := strings.Fields(group)
	r := walkRun(t, "", words...)
	assert.Equal(t, ExitUsage, r.code, group)
	assert.Contains(t, r.stderr, "Usage: spiffe-server "+group+" <subcommand>")
	assert.Empty(t, r.stdout)
	for _, h := range []string{"-h", "--help", "help"} {
		r = walkRun(t, "", append(slices.Clone(words), h)...)
		assert.Equal(t, ExitOK, r.code, group)
		assert.Contains(t, r.stdout, "Usage: spiffe-server "+group+" <subcommand>")
		assert.Empty(t, r.stderr)
	}
}

// walkCommand checks one command against the socket it talks to: -h
// prints its usage, with the socket's flag, alias and variable, on stdout
// and exits 0; an unknown flag, a stray argument or an unknown output
// format exits 2 with the problem and a pointer to -h; the well-formed
// call (args, stdin) exits 1 with one line saying where it looked when
// nothing listens at the socket, in either output format.
func walkCommand(t *testing.T, name string, a api, args []string, stdin string) {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "none.sock")
	path := strings.Fields(name)
	r := walkRun(t, "", append(slices.Clone(path), "-h")...)
	assert.Equal(t, ExitOK, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "Usage: spiffe-server "+name+" [flags]\n"), r.stdout)
	for _, flag := range []string{a.flag + " path", "also -socketPath", "environment " + a.env, "-output format"} {
		assert.Contains(t, r.stdout, flag)
	}
	assert.Empty(t, r.stderr)

	for _, bad := range [][]string{{"-no-such-flag"}, {"stray"}, {"-output", "xml"}} {
		r = walkRun(t, stdin, append(append(slices.Clone(path), args...), bad...)...)
		assert.Equal(t, ExitUsage, r.code, bad)
		assert.Empty(t, r.stdout)
		assert.Equal(t, 2, strings.Count(r.stderr, "\n"), r.stderr)
		assert.Contains(t, r.stderr, `Run "spiffe-server `+name+` -h" for help.`)
	}

	for _, output := range []string{"pretty", "json"} {
		line := append(append(slices.Clone(path), args...), a.flag, missing, "-output", output)
		r = walkRun(t, stdin, line...)
		assert.Equal(t, ExitFailure, r.code, "%v: %s", line, r.stderr)
		assert.Empty(t, r.stdout)
		assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
		assert.True(t, strings.HasPrefix(r.stderr, "spiffe-server "+name+": "), r.stderr)
		assert.Contains(t, r.stderr, a.unreachable(missing))
	}
}

// TestEveryCommandExitCodes walks every admin command (walkCommand, and
// walkGroup for each group). The commands of the launcher API, which take
// -launcher-socket instead, are the launch group's and only its: the
// launch group has its walk, TestEveryLaunchCommandExitCodes.
func TestEveryCommandExitCodes(t *testing.T) {
	var walked []string
	for group, cmds := range groups {
		for _, cmd := range cmds {
			assert.Equal(t, group == "launch", cmd.launcher, "%s %s: the launcher API's commands are the launch group", group, cmd.name)
		}
		if group == "launch" {
			continue
		}
		walkGroup(t, group)
		for _, cmd := range cmds {
			name := group + " " + cmd.name
			walked = append(walked, name)
			t.Run(name, func(t *testing.T) {
				call, ok := validCalls[name]
				require.True(t, ok, "no valid call of %q in the table", name)
				walkCommand(t, name, adminAPI, call.args, call.stdin)
			})
		}
	}
	slices.Sort(walked)
	table := slices.Sorted(maps.Keys(validCalls))
	assert.Equal(t, table, walked, "the table names every admin command, and only admin commands")
}

// TestEveryLaunchCommandExitCodes walks every launch command as
// TestEveryCommandExitCodes walks the admin commands, against
// -launcher-socket, and then sends each well-formed call to a launcher API
// that refuses the caller's uid: each exits 1 with the server's refusal
// on one line, in either output format. A launch ID that cannot be one is
// a usage error, before any request.
func TestEveryLaunchCommandExitCodes(t *testing.T) {
	l := startLauncher(t, func(c *launch.Config) { c.AllowedUIDs = []int{os.Getuid() + 4242} })
	walkGroup(t, "launch")
	var walked []string
	for _, cmd := range groups["launch"] {
		name := "launch " + cmd.name
		walked = append(walked, name)
		t.Run(cmd.name, func(t *testing.T) {
			call, ok := launchCalls[name]
			require.True(t, ok, "no valid call of %q in the table", name)
			walkCommand(t, name, launcherAPI, call.args, call.stdin)
			r := walkRun(t, "", append(append([]string{"launch", cmd.name}, call.args...), "-launcher-socket")...)
			assert.Equal(t, ExitUsage, r.code, "a flag without its value: %s", r.stderr)

			for _, output := range []string{"pretty", "json"} {
				line := append(append([]string{"launch", cmd.name}, call.args...), "-launcher-socket", l.socket, "-output", output)
				r := walkRun(t, call.stdin, line...)
				assert.Equal(t, ExitFailure, r.code, "%v: %s", line, r.stderr)
				assert.Empty(t, r.stdout)
				assert.Equal(t, fmt.Sprintf("spiffe-server %s: launch: permission denied: uid %d may not launch"+
					" (run it as a uid of the launcher section's allowed_uids)\n", name, os.Getuid()), r.stderr)
			}
		})
	}
	slices.Sort(walked)
	assert.Equal(t, slices.Sorted(maps.Keys(launchCalls)), walked, "the table names every launch command, and only them")

	for _, verb := range []string{"show", "end"} {
		for _, id := range []string{"42", "0123456789ABCDEF0123456789ABCDEF", "../0123456789abcdef0123456789abcd"} {
			r := walkRun(t, "", "launch", verb, "-launch-id", id, "-launcher-socket", l.socket)
			assert.Equal(t, ExitUsage, r.code, "%s %q: %s", verb, id, r.stderr)
			assert.Contains(t, r.stderr, "is not a launch ID", verb)
			assert.Empty(t, r.stdout)
		}
	}
}

// TestAdminSocketFromEnvironment: without -admin-socket (or SPIRE's
// -socketPath), the socket is the one of SPIFFE_SERVER_ADMIN_SOCKET, the
// variable of run's -admin-socket too.
func TestAdminSocketFromEnvironment(t *testing.T) {
	s := startServer(t)
	elsewhere := filepath.Join(t.TempDir(), "none.sock")
	run := func(args ...string) result {
		var out, errb bytes.Buffer
		code := adminCommand(t.Context(), args, strings.NewReader(""), &out, &errb)
		return result{code, out.String(), errb.String()}
	}
	t.Setenv(AdminSocketEnv, s.socket)
	r := run("entry", "list")
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "Found 0 entries\n", r.stdout)

	r = run("entry", "list", "-socketPath", elsewhere)
	assert.Equal(t, ExitFailure, r.code, "a flag wins over the variable")
	assert.Contains(t, r.stderr, "cannot reach the server at "+elsewhere)

	t.Setenv(AdminSocketEnv, "")
	r = run("entry", "list")
	assert.Equal(t, ExitFailure, r.code)
	assert.Contains(t, r.stderr, "cannot reach the server at "+DefaultAdminSocket, "an empty variable is unset")
}
