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

// validCalls are, for every client command, flags that make a well-formed
// call: with no agent to answer it, each must fail with ExitFailure.
var validCalls = map[string][]string{
	"api fetch x509":   nil,
	"api fetch jwt":    {"-audience", "a,b", "-spiffeID", "spiffe://example.org/web"},
	"api fetch wit":    {"-spiffe-id", "spiffe://example.org/web"},
	"healthcheck":      {"-shallow", "-verbose"},
	"api validate jwt": {"-audience", "a", "-svid", "a.b.c"},
	"api watch":        {"-output", "json"},
}

// TestEveryCommandExitCodes walks every command: -h prints its usage on
// stdout and exits 0; an unknown flag or a stray argument exits 2 with the
// problem and a pointer to -h; a well-formed call with no agent on the
// socket exits 1 with one line.
func TestEveryCommandExitCodes(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	var walked []string
	for _, c := range append([]clientCommand{{words: "run"}}, clientCommands...) {
		walked = append(walked, c.words)
		t.Run(c.words, func(t *testing.T) {
			path := strings.Fields(c.words)
			code, stdout, stderr := cli(t, append(slices.Clone(path), "-h")...)
			assert.Equal(t, ExitOK, code)
			assert.True(t, strings.HasPrefix(stdout, "Usage: spiffe-agent "+c.words+" [flags]\n"), stdout)
			assert.Empty(t, stderr)
			if c.words != "run" {
				assert.Contains(t, stdout, "also -socketPath")
			}

			for _, bad := range [][]string{{"-no-such-flag"}, {"stray"}} {
				code, stdout, stderr = cli(t, append(append(slices.Clone(path), validCalls[c.words]...), bad...)...)
				assert.Equal(t, ExitUsage, code, bad)
				assert.Empty(t, stdout)
				assert.Equal(t, 2, strings.Count(stderr, "\n"), stderr)
				assert.Contains(t, stderr, `Run "spiffe-agent `+c.words+` -h" for help.`)
			}
			if c.words == "run" {
				return
			}
			args, ok := validCalls[c.words]
			require.True(t, ok, "no valid call of %q in the table", c.words)
			code, stdout, stderr = cli(t, append(append(slices.Clone(path), args...), "-socketPath", missing, "-timeout", "300ms")...)
			assert.Equal(t, ExitFailure, code, stderr)
			if c.words != "healthcheck" {
				assert.Empty(t, stdout)
			}
			assert.Contains(t, stderr, "spiffe-agent "+c.words+": ")
			assert.Equal(t, 1, strings.Count(strings.TrimPrefix(stderr, "checking the Workload API at unix://"+missing+"\n"), "\n"), stderr)
		})
	}
	table := []string{"run"}
	for name := range validCalls {
		table = append(table, name)
	}
	slices.Sort(table)
	slices.Sort(walked)
	assert.Equal(t, table, walked, "the table names every command, and only commands")

	// Groups of commands: their usage, as help or as an error.
	for _, args := range [][]string{{"api", "-h"}, {"api", "fetch", "--help"}, {"api", "help"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, ExitOK, Main(t.Context(), args, &stdout, &stderr), args)
		assert.Contains(t, stdout.String(), "Usage: spiffe-agent "+strings.Join(args[:len(args)-1], " ")+" <subcommand>")
		assert.Empty(t, stderr.String())
	}
}
