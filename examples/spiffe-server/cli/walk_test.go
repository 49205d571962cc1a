package cli

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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

// TestEveryCommandExitCodes walks every admin command: -h prints its usage
// on stdout and exits 0; an unknown flag or a stray argument exits 2 with
// the problem and a pointer to -h; a well-formed request that the server
// cannot answer exits 1 with one line, in either output format. A group
// alone exits 2 with its usage, and with -h exits 0.
func TestEveryCommandExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	var walked []string
	for group, cmds := range groups {
		run := func(stdin string, args ...string) result {
			var out, errb bytes.Buffer
			code := adminCommand(t.Context(), args, strings.NewReader(stdin), &out, &errb)
			return result{code, out.String(), errb.String()}
		}
		words := strings.Fields(group)
		r := run("", words...)
		assert.Equal(t, ExitUsage, r.code, group)
		assert.Contains(t, r.stderr, "Usage: spiffe-server "+group+" <subcommand>")
		assert.Empty(t, r.stdout)
		for _, h := range []string{"-h", "--help", "help"} {
			r = run("", append(slices.Clone(words), h)...)
			assert.Equal(t, ExitOK, r.code, group)
			assert.Contains(t, r.stdout, "Usage: spiffe-server "+group+" <subcommand>")
			assert.Empty(t, r.stderr)
		}
		for _, cmd := range cmds {
			name := group + " " + cmd.name
			walked = append(walked, name)
			t.Run(name, func(t *testing.T) {
				path := append(slices.Clone(words), cmd.name)
				r := run("", append(slices.Clone(path), "-h")...)
				assert.Equal(t, ExitOK, r.code)
				assert.True(t, strings.HasPrefix(r.stdout, "Usage: spiffe-server "+name+" [flags]\n"), r.stdout)
				for _, flag := range []string{"-admin-socket path", "also -socketPath", "environment " + AdminSocketEnv, "-output format"} {
					assert.Contains(t, r.stdout, flag)
				}
				assert.Empty(t, r.stderr)

				for _, bad := range [][]string{{"-no-such-flag"}, {"stray"}, {"-output", "xml"}} {
					call := validCalls[name]
					r = run(call.stdin, append(append(slices.Clone(path), call.args...), bad...)...)
					assert.Equal(t, ExitUsage, r.code, bad)
					assert.Empty(t, r.stdout)
					assert.Equal(t, 2, strings.Count(r.stderr, "\n"), r.stderr)
					assert.Contains(t, r.stderr, `Run "spiffe-server `+name+` -h" for help.`)
				}

				call, ok := validCalls[name]
				require.True(t, ok, "no valid call of %q in the table", name)
				for _, output := range []string{"pretty", "json"} {
					args := append(append(slices.Clone(path), call.args...), "-admin-socket", missing, "-output", output)
					r = run(call.stdin, args...)
					assert.Equal(t, ExitFailure, r.code, "%v: %s", args, r.stderr)
					assert.Empty(t, r.stdout)
					assert.Equal(t, 1, strings.Count(r.stderr, "\n"), r.stderr)
					assert.True(t, strings.HasPrefix(r.stderr, "spiffe-server "+name+": "), r.stderr)
					assert.Contains(t, r.stderr, "cannot reach the server at "+missing)
				}
			})
		}
	}
	slices.Sort(walked)
	var table []string
	for name := range validCalls {
		table = append(table, name)
	}
	slices.Sort(table)
	assert.Equal(t, table, walked, "the table names every command, and only commands")
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
