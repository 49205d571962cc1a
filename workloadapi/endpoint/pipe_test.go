package endpoint

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The names ListenNamedPipe takes, on every system: those that would
// leave the pipe namespace are refused before anything is created.
func TestPipePath(t *testing.T) {
	for _, tt := range []struct{ name, path, err string }{
		{name: "spiffe-agent", path: `\\.\pipe\spiffe-agent`},
		{name: `spire-agent\public\api`, path: `\\.\pipe\spire-agent\public\api`},
		{name: "spire-agent/public/api", path: `\\.\pipe\spire-agent\public\api`},
		{name: "", err: "endpoint: named pipe name is empty"},
		{name: "..", err: `must not have empty, "." or ".." elements`},
		{name: `a\..\..\x`, err: `must not have empty, "." or ".." elements`},
		{name: "a//b", err: `must not have empty, "." or ".." elements`},
		{name: `\a`, err: `must not have empty, "." or ".." elements`},
		{name: "a\x00b", err: "must not contain NUL"},
		{name: strings.Repeat("p", 257), err: "longer than 256 characters"},
	} {
		path, err := pipePath(tt.name)
		if tt.err != "" {
			require.Error(t, err, tt.name)
			assert.Contains(t, err.Error(), tt.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.path, path)
	}
}

// A caller the kernel gave a PID but no uid and gid (a Windows named pipe)
// has no credentials: no attestor takes it for a uid.
func TestCallerWithPIDOnly(t *testing.T) {
	c := Caller{PID: 42, UID: -1, GID: -1}
	assert.False(t, c.HasCredentials())
	w := c.Workload()
	assert.Equal(t, 42, w.PID)
	assert.Nil(t, w.Credentials)
}
