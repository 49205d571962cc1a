package cmdline_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/examples/internal/cmdline"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// config is a command's configuration in the tests.
type config struct {
	Name      string
	Verbose   bool
	Timeout   time.Duration
	Servers   []string
	ID        spiffeid.ID
	Cert      string
	Peers     []peer
	Untouched string
}

type peer struct {
	Name string `json:"name"`
	Port int    `json:"port"`
}

func newCommand(c *config) *cmdline.Command {
	cmd := cmdline.New("prog run", "Runs the test program.")
	cmd.Configurable("PROG")
	cmd.String(&c.Name, "name", "anon", "the `name` to use")
	cmd.Bool(&c.Verbose, "verbose", false, "say more")
	cmd.Duration(&c.Timeout, "timeout", 5*time.Second, "how long to wait")
	cmd.Var(cmdline.NewList(&c.Servers, cmdline.Text, ","), "server", "a `host:port`; repeatable").File("servers")
	cmd.Var(cmdline.NewValue(&c.ID, spiffeid.FromString), "id", "a SPIFFE `ID`")
	cmd.String(&c.Cert, "cert", "", "a certificate `file`").File("tls.cert")
	cmd.Section("peers", "the peers, a list of objects", &c.Peers)
	return cmd
}

func writeFile(t *testing.T, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prog.json")
	require.NoError(t, os.WriteFile(p, []byte(data), 0o600))
	return p
}

// parse parses args; it returns the configuration, whether the command
// goes on, the exit code, stdout and stderr.
func parse(t *testing.T, args ...string) (config, bool, int, string, string) {
	t.Helper()
	var c config
	var stdout, stderr bytes.Buffer
	code, ok := newCommand(&c).Parse(args, &stdout, &stderr)
	return c, ok, code, stdout.String(), stderr.String()
}

func TestDefaults(t *testing.T) {
	c, ok, code, stdout, stderr := parse(t)
	require.True(t, ok)
	assert.Equal(t, cmdline.ExitOK, code)
	assert.Empty(t, stdout+stderr)
	assert.Equal(t, config{Name: "anon", Timeout: 5 * time.Second}, c)
}

const file = `{
	"name": "from-file",
	"verbose": true,
	"timeout": "1m",
	"servers": ["f1:1", "f2:2"],
	"id": "spiffe://example.org/file",
	"tls": {"cert": "/etc/file.pem"},
	"peers": [{"name": "a", "port": 1}, {"name": "b", "port": 2}]
}`

func TestFile(t *testing.T) {
	c, ok, _, _, stderr := parse(t, "-config", writeFile(t, file))
	require.True(t, ok, stderr)
	assert.Equal(t, config{
		Name: "from-file", Verbose: true, Timeout: time.Minute, Servers: []string{"f1:1", "f2:2"},
		ID: spiffeid.RequireFromString("spiffe://example.org/file"), Cert: "/etc/file.pem",
		Peers: []peer{{"a", 1}, {"b", 2}},
	}, c)
}

func TestFlagsWinOverEnvironmentOverFile(t *testing.T) {
	path := writeFile(t, file)
	t.Setenv("PROG_CONFIG", path)
	t.Setenv("PROG_NAME", "from-env")
	t.Setenv("PROG_SERVER", "e1:1, e2:2")
	t.Setenv("PROG_VERBOSE", "false")
	t.Setenv("PROG_CERT", "") // empty: not set

	c, ok, _, _, stderr := parse(t, "-timeout", "2s", "-server", "c1:1")
	require.True(t, ok, stderr)
	assert.Equal(t, "from-env", c.Name, "the environment wins over the file")
	assert.False(t, c.Verbose, "the environment wins over the file")
	assert.Equal(t, 2*time.Second, c.Timeout, "a flag wins over the file")
	assert.Equal(t, []string{"c1:1"}, c.Servers, "a flag replaces the list of the environment and the file")
	assert.Equal(t, "/etc/file.pem", c.Cert, "an empty variable leaves the file's value")
	assert.Equal(t, "spiffe://example.org/file", c.ID.String())
	assert.Len(t, c.Peers, 2)

	c, ok, _, _, stderr = parse(t, "-name", "from-flag")
	require.True(t, ok, stderr)
	assert.Equal(t, "from-flag", c.Name, "a flag wins over the environment")
	assert.Equal(t, []string{"e1:1", "e2:2"}, c.Servers, "the environment replaces the file's list")
}

func TestSetAndVisit(t *testing.T) {
	var c config
	cmd := newCommand(&c)
	t.Setenv("PROG_VERBOSE", "true")
	_, ok := cmd.Parse([]string{"-name", "x"}, &bytes.Buffer{}, &bytes.Buffer{})
	require.True(t, ok)
	assert.True(t, cmd.Set("name"))
	assert.True(t, cmd.Set("verbose"), "a value from the environment is set too")
	assert.False(t, cmd.Set("timeout"))
	var names []string
	cmd.Visit(func(name string) { names = append(names, name) })
	assert.Equal(t, []string{"name", "verbose"}, names)
	assert.Equal(t, "prog run", cmd.Name())
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		file string // written to a file given with -config, if set
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "", nil, "flag provided but not defined: -nope"},
		{"stray argument", []string{"-name", "x", "extra"}, "", nil, `unexpected argument "extra"`},
		{"no value", []string{"-name"}, "", nil, "flag needs an argument: -name"},
		{"bad duration", []string{"-timeout", "soon"}, "", nil, `invalid value "soon" for flag -timeout: time: invalid duration "soon"`},
		{"bad ID", []string{"-id", "example.org"}, "", nil, `invalid value "example.org" for flag -id: spiffeid: scheme is missing or invalid`},
		{"bad variable", nil, "", map[string]string{"PROG_TIMEOUT": "soon"}, `error setting flag "timeout" from environment variable "PROG_TIMEOUT": time: invalid duration "soon"`},
		{"missing file", []string{"-config", filepath.Join(dir, "none.json")}, "", nil, "configuration file: open " + filepath.Join(dir, "none.json") + ": no such file or directory"},
		{"file is a directory", []string{"-config", dir}, "", nil, dir + " is not a regular file"},
		{"not JSON", nil, "name = x", nil, "prog.json: invalid character"},
		{"not an object", nil, `["x"]`, nil, "prog.json: json: cannot unmarshal array"},
		{"trailing data", nil, `{} {}`, nil, "prog.json: unexpected data after the JSON value"},
		{"too large", nil, `{"name": "` + strings.Repeat("x", cmdline.MaxFileSize) + `"}`, nil, "larger than 1048576 bytes"},
		{"unknown key", nil, `{"nmae": "x"}`, nil, `prog.json: unknown key "nmae"`},
		{"flag name with a dash is no key", nil, `{"tls-cert": "x"}`, nil, `unknown key "tls-cert"`},
		{"renamed key under its flag name", nil, `{"cert": "x"}`, nil, `unknown key "cert"`},
		{"variable name is no key", nil, `{"PROG_NAME": "x"}`, nil, `unknown key "PROG_NAME"`},
		{"config is no key", nil, `{"config": "other.json"}`, nil, `unknown key "config"`},
		{"unknown nested key", nil, `{"tls": {"key": "x"}}`, nil, `unknown key "tls.key"`},
		{"bad file value", nil, `{"timeout": 30}`, nil, `prog.json: timeout: invalid value "30": time: missing unit in duration "30"`},
		{"bad list element", nil, `{"id": ["spiffe://example.org/a", "nope"]}`, nil, `prog.json: id: invalid value "nope"`},
		{"section of the wrong type", nil, `{"peers": {"name": "a"}}`, nil, "prog.json: peers: json: cannot unmarshal object"},
		{"unknown field in a section", nil, `{"peers": [{"name": "a", "host": "h"}]}`, nil, `prog.json: peers: json: unknown field "host"`},
		{"section from a flag", []string{"-peers", "a"}, "", nil, "flag provided but not defined: -peers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args := tt.args
			if tt.file != "" {
				args = append([]string{"-config", writeFile(t, tt.file)}, args...)
			}
			_, ok, code, stdout, stderr := parse(t, args...)
			assert.False(t, ok)
			assert.Equal(t, cmdline.ExitUsage, code)
			assert.Empty(t, stdout)
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			require.Len(t, lines, 2, stderr)
			assert.True(t, strings.HasPrefix(lines[0], "prog run: "), stderr)
			assert.Contains(t, lines[0], tt.want)
			assert.Equal(t, `Run "prog run -h" for help.`, lines[1])
		})
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		_, ok, code, stdout, stderr := parse(t, "-name", "x", arg)
		assert.False(t, ok)
		assert.Equal(t, cmdline.ExitOK, code)
		assert.Empty(t, stderr)
		assert.Equal(t, `Usage: prog run [flags]

Runs the test program.

Flags:
  -cert file
    	a certificate file
    	environment PROG_CERT, file key tls.cert
  -config file
    	JSON configuration file; flags and environment variables win over its keys
    	environment PROG_CONFIG
  -id ID
    	a SPIFFE ID
    	environment PROG_ID, file key id
  -name name
    	the name to use (default anon)
    	environment PROG_NAME, file key name
  -server host:port
    	a host:port; repeatable
    	environment PROG_SERVER, file key servers
  -timeout duration
    	how long to wait (default 5s)
    	environment PROG_TIMEOUT, file key timeout
  -verbose
    	say more
    	environment PROG_VERBOSE, file key verbose

File only:
  peers
    	the peers, a list of objects

A flag given wins over its environment variable, which wins over the file's key.
`, stdout)
	}
}

func TestCommandWithoutEnvironmentOrFile(t *testing.T) {
	t.Setenv("PROG_NAME", "from-env")
	var name string
	cmd := cmdline.New("prog show", "")
	cmd.String(&name, "name", "", "the `name`\non two lines")
	var stdout, stderr bytes.Buffer
	_, ok := cmd.Parse(nil, &stdout, &stderr)
	require.True(t, ok)
	assert.Empty(t, name, "no variable is read")

	code, ok := cmd.Parse([]string{"-config", "x.json"}, &stdout, &stderr)
	assert.False(t, ok)
	assert.Equal(t, cmdline.ExitUsage, code)
	assert.Contains(t, stderr.String(), "flag provided but not defined: -config")

	cmd.Usage(&stdout)
	assert.Equal(t, "Usage: prog show [flags]\n\nFlags:\n  -name name\n    \tthe name\n    \ton two lines\n", stdout.String())
}

func TestFailAndMisuse(t *testing.T) {
	cmd := cmdline.New("prog do", "")
	var stderr bytes.Buffer
	assert.Equal(t, cmdline.ExitFailure, cmd.Fail(&stderr, assert.AnError))
	assert.Equal(t, "prog do: "+assert.AnError.Error()+"\n", stderr.String())

	stderr.Reset()
	assert.Equal(t, cmdline.ExitUsage, cmd.Misuse(&stderr, &multiLineError{}))
	assert.Equal(t, "prog do: first second\nRun \"prog do -h\" for help.\n", stderr.String())
}

type multiLineError struct{}

func (*multiLineError) Error() string { return "first\n  second\n" }

func TestConfigurableNeedsAPrefix(t *testing.T) {
	assert.Panics(t, func() { cmdline.New("prog", "").Configurable("") })
}

// Property: a command refuses to go on while a required key has no value
// from any source, naming the first such key in the order they were marked;
// an empty value is no value.
func TestRequired(t *testing.T) {
	parse := func(t *testing.T, args ...string) (bool, int, string) {
		var id spiffeid.ID
		var name string
		var servers []string
		cmd := cmdline.New("prog show", "")
		cmd.Configurable("PROG")
		cmd.Var(cmdline.NewValue(&id, spiffeid.FromString), "id", "a SPIFFE `ID` (required)").Required()
		cmd.String(&name, "name", "", "a `name` (required)").Required()
		cmd.Var(cmdline.NewList(&servers, cmdline.Text, ","), "server", "a `host:port` (required; repeatable)").Required()
		cmd.String(new(string), "note", "", "a `note`")
		var stderr bytes.Buffer
		code, ok := cmd.Parse(args, &bytes.Buffer{}, &stderr)
		return ok, code, stderr.String()
	}
	id := "spiffe://example.org/a"
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // "" when the command goes on
	}{
		{"all given", []string{"-id", id, "-name", "x", "-server", "s:1"}, nil, ""},
		{"none given: the first marked", nil, nil, "-id is required"},
		{"one missing", []string{"-id", id, "-server", "s:1"}, nil, "-name is required"},
		{"an empty value is none", []string{"-id", id, "-name", "", "-server", "s:1"}, nil, "-name is required"},
		{"an empty list is none", []string{"-id", id, "-name", "x"}, nil, "-server is required"},
		{"from the environment", []string{"-id", id}, map[string]string{"PROG_NAME": "x", "PROG_SERVER": "s:1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			ok, code, stderr := parse(t, tt.args...)
			if tt.want == "" {
				require.True(t, ok, stderr)
				assert.Equal(t, cmdline.ExitOK, code)
				return
			}
			assert.False(t, ok)
			assert.Equal(t, cmdline.ExitUsage, code)
			assert.Equal(t, "prog show: "+tt.want+"\nRun \"prog show -h\" for help.\n", stderr)
		})
	}

	// Help is printed whatever is missing.
	ok, code, stderr := parse(t, "-h")
	assert.False(t, ok)
	assert.Equal(t, cmdline.ExitOK, code)
	assert.Empty(t, stderr)
}

// newAliased returns a command whose keys have aliases and variables, as
// the programs' client commands declare them.
func newAliased(id *spiffeid.ID, socket *string, sels *[]string, node *bool) *cmdline.Command {
	cmd := cmdline.New("prog entry", "")
	cmd.Var(cmdline.NewValue(id, spiffeid.FromString), "spiffe-id", "a SPIFFE `ID`").Alias("spiffeID")
	cmd.String(socket, "socket", "/run/default.sock", "socket `path`").Alias("socketPath").Env("PROG_SOCKET", "OTHER_SOCKET")
	cmd.Var(cmdline.NewList(sels, cmdline.Text, ""), "selector", "a `selector`; repeatable").Alias("sel", "s")
	cmd.Bool(node, "node", false, "a node entry").Alias("isNode")
	return cmd
}

// Property: an alias sets its key's one value, is reported under the
// key's name, and is listed with the key in the help, not on its own.
func TestAlias(t *testing.T) {
	parse := func(args ...string) (spiffeid.ID, string, []string, bool, *cmdline.Command, int, string) {
		var id spiffeid.ID
		var socket string
		var sels []string
		var node bool
		cmd := newAliased(&id, &socket, &sels, &node)
		var stdout, stderr bytes.Buffer
		code, _ := cmd.Parse(args, &stdout, &stderr)
		return id, socket, sels, node, cmd, code, stdout.String() + stderr.String()
	}
	id, socket, sels, node, cmd, code, out := parse("-spiffeID", "spiffe://example.org/a", "-socketPath", "/s",
		"-sel", "a:1", "-selector", "b:2", "-s", "c:3", "-isNode")
	require.Equal(t, cmdline.ExitOK, code, out)
	assert.Equal(t, "spiffe://example.org/a", id.String())
	assert.Equal(t, "/s", socket)
	assert.Equal(t, []string{"a:1", "b:2", "c:3"}, sels, "every name appends to the one list")
	assert.True(t, node, "a boolean alias needs no value")
	var names []string
	cmd.Visit(func(name string) { names = append(names, name) })
	assert.Equal(t, []string{"node", "selector", "socket", "spiffe-id"}, names, "once each, under the key's name")
	assert.True(t, cmd.Set("spiffe-id"))
	assert.False(t, cmd.Set("spiffeID"), "an alias is no key of its own")

	_, _, _, _, _, code, out = parse("-h")
	assert.Equal(t, cmdline.ExitOK, code)
	assert.Equal(t, `Usage: prog entry [flags]

Flags:
  -node
    	a node entry
    	also -isNode
  -selector selector
    	a selector; repeatable
    	also -sel, -s
  -socket path
    	socket path (default /run/default.sock)
    	also -socketPath
    	environment PROG_SOCKET, then OTHER_SOCKET
  -spiffe-id ID
    	a SPIFFE ID
    	also -spiffeID
`, out)

	_, _, _, _, _, code, out = parse("-spiffeID", "example.org")
	assert.Equal(t, cmdline.ExitUsage, code)
	assert.Contains(t, out, `invalid value "example.org" for flag -spiffeID`, "the error names the flag as typed")

	assert.Panics(t, func() {
		newAliased(new(spiffeid.ID), new(string), new([]string), new(bool)).String(new(string), "x", "", "").Alias("s")
	},
		"a name taken")
	assert.Panics(t, func() {
		cmd := cmdline.New("prog run", "")
		cmd.Configurable("PROG")
		cmd.String(new(string), "name", "", "").Alias("n")
	}, "aliases have no variable or file key")
}

// Property: a key's variables give its value when no flag does, the first
// one set and not empty winning; a flag (under any name) wins over them.
func TestKeyEnv(t *testing.T) {
	parse := func(args ...string) (string, int, string) {
		var id spiffeid.ID
		var socket string
		var sels []string
		var node bool
		var stdout, stderr bytes.Buffer
		code, _ := newAliased(&id, &socket, &sels, &node).Parse(args, &stdout, &stderr)
		return socket, code, stderr.String()
	}
	socket, _, _ := parse()
	assert.Equal(t, "/run/default.sock", socket, "no variable: the default")
	t.Setenv("OTHER_SOCKET", "/other.sock")
	socket, _, _ = parse()
	assert.Equal(t, "/other.sock", socket)
	t.Setenv("PROG_SOCKET", "")
	socket, _, _ = parse()
	assert.Equal(t, "/other.sock", socket, "an empty variable is unset")
	t.Setenv("PROG_SOCKET", "/prog.sock")
	socket, _, _ = parse()
	assert.Equal(t, "/prog.sock", socket, "the first variable wins")
	socket, _, _ = parse("-socketPath", "/flag.sock")
	assert.Equal(t, "/flag.sock", socket, "a flag wins")

	// A bad value names the variable.
	var n int
	cmd := cmdline.New("prog count", "")
	cmd.Var(cmdline.NewValue(&n, strconv.Atoi), "n", "a `number`").Env("PROG_N")
	t.Setenv("PROG_N", "many")
	var stderr bytes.Buffer
	code, ok := cmd.Parse(nil, &bytes.Buffer{}, &stderr)
	assert.False(t, ok)
	assert.Equal(t, cmdline.ExitUsage, code)
	assert.Equal(t, "prog count: environment variable PROG_N: invalid value \"many\": strconv.Atoi: parsing \"many\": invalid syntax\nRun \"prog count -h\" for help.\n", stderr.String())
}

// Property: on a configurable command, the key's own variable and the
// file win over the variables of Key.Env.
func TestKeyEnvOnConfigurable(t *testing.T) {
	parse := func(args ...string) string {
		var socket string
		cmd := cmdline.New("prog run", "")
		cmd.Configurable("PROG")
		cmd.String(&socket, "socket", "/default", "").Env("SHARED_SOCKET")
		_, ok := cmd.Parse(args, &bytes.Buffer{}, &bytes.Buffer{})
		require.True(t, ok)
		return socket
	}
	t.Setenv("SHARED_SOCKET", "/shared")
	assert.Equal(t, "/shared", parse())
	assert.Equal(t, "/file", parse("-config", writeFile(t, `{"socket": "/file"}`)))
	t.Setenv("PROG_SOCKET", "/own")
	assert.Equal(t, "/own", parse())
}

// TestNestedSection checks a section inside an object whose other members
// are keys of flags.
func TestNestedSection(t *testing.T) {
	type plugin struct {
		Port int `json:"port"`
	}
	parseNested := func(t *testing.T, file string) (*plugin, bool, bool, string) {
		t.Helper()
		var (
			p    *plugin
			skip bool
		)
		cmd := cmdline.New("prog run", "")
		cmd.Configurable("PROG")
		cmd.Bool(&skip, "a-skip", false, "skip").File("plugins.a.skip")
		cmd.Section("plugins.b", "plugin b", &p)
		var stdout, stderr bytes.Buffer
		_, ok := cmd.Parse([]string{"-config", writeFile(t, file)}, &stdout, &stderr)
		return p, skip, ok, stderr.String()
	}

	p, skip, ok, stderr := parseNested(t, `{"plugins": {"a": {"skip": true}, "b": {"port": 7}}}`)
	require.True(t, ok, stderr)
	assert.True(t, skip)
	require.NotNil(t, p)
	assert.Equal(t, 7, p.Port)

	p, skip, ok, stderr = parseNested(t, `{"plugins": {"a": {}, "b": {}}}`)
	require.True(t, ok, stderr)
	assert.False(t, skip)
	assert.NotNil(t, p, "an empty object is given")

	p, _, ok, stderr = parseNested(t, `{"plugins": {"a": {"skip": true}}}`)
	require.True(t, ok, stderr)
	assert.Nil(t, p, "absent")

	p, _, ok, stderr = parseNested(t, `{}`)
	require.True(t, ok, stderr)
	assert.Nil(t, p)

	for _, tt := range []struct{ name, file, want string }{
		{"unknown field in the section", `{"plugins": {"b": {"host": "h"}}}`, `plugins.b: json: unknown field "host"`},
		{"unknown plugin", `{"plugins": {"c": {}}}`, `unknown key "plugins.c"`},
		{"unknown key beside the section", `{"plugins": {"a": {"nope": 1}, "b": {}}}`, `unknown key "plugins.a.nope"`},
		{"not an object on the way", `{"plugins": ["b"]}`, `plugins: want a JSON object`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, ok, stderr := parseNested(t, tt.file)
			assert.False(t, ok)
			assert.Contains(t, stderr, tt.want)
		})
	}
}
