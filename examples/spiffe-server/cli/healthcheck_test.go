package cli

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/admin/adminserver"
)

// healthcheckAt runs spiffe-server healthcheck against socket.
func healthcheckAt(t *testing.T, socket string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := adminCommand(t.Context(), append([]string{"healthcheck", "-admin-socket", socket}, args...), strings.NewReader(""), &out, &errb)
	return result{code, out.String(), errb.String()}
}

// TestHealthcheck: 0 for a server that can issue, 1 for one that answers
// but cannot (0 with -shallow) and for one that does not answer, on one
// line; what a Kubernetes probe reads.
func TestHealthcheck(t *testing.T) {
	r := healthcheckAt(t, startCA(t))
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, "healthy: the server of example.org answered\n", r.stdout)
	assert.Empty(t, r.stderr)

	var sick atomic.Pointer[error]
	s := startServerWith(t, func(c *adminserver.Config) {
		c.Health = func(context.Context) error {
			if err := sick.Load(); err != nil {
				return *err
			}
			return nil
		}
	})
	r = healthcheckAt(t, s.socket, "-output", "json")
	assert.Equal(t, ExitOK, r.code, r.stderr)
	assert.Equal(t, `{"trust_domain":"example.org","healthy":true}`+"\n", r.stdout)

	down := errors.New("server: datastore: connection refused")
	sick.Store(&down)
	r = healthcheckAt(t, s.socket)
	assert.Equal(t, ExitFailure, r.code)
	assert.Empty(t, r.stdout)
	assert.Equal(t, "spiffe-server healthcheck: unhealthy: server: datastore: connection refused\n", r.stderr)
	r = healthcheckAt(t, s.socket, "-output", "json")
	assert.Equal(t, ExitFailure, r.code)
	assert.Equal(t, `{"trust_domain":"example.org","healthy":false,"reason":"server: datastore: connection refused"}`+"\n", r.stdout,
		"the result, for a script, and the line on stderr")
	r = healthcheckAt(t, s.socket, "-shallow", "-verbose")
	assert.Equal(t, ExitOK, r.code, "a server that answers is alive")
	assert.Equal(t, "checking the server's admin socket\n", r.stderr)

	missing := filepath.Join(t.TempDir(), "none.sock")
	r = healthcheckAt(t, missing, "-shallow")
	assert.Equal(t, ExitFailure, r.code)
	assert.Empty(t, r.stdout)
	assert.True(t, strings.HasPrefix(r.stderr, "spiffe-server healthcheck: unhealthy: admin: cannot reach the server at "+missing), r.stderr)
	assert.Equal(t, 1, strings.Count(r.stderr, "\n"))

	for _, args := range [][]string{{"-timeout", "0s"}, {"-nope"}, {"extra"}} {
		r = healthcheckAt(t, missing, args...)
		assert.Equal(t, ExitUsage, r.code, args)
		assert.Contains(t, r.stderr, `Run "spiffe-server healthcheck -h" for help.`)
	}
	var out, errb bytes.Buffer
	assert.Equal(t, ExitOK, Admin(t.Context(), []string{"healthcheck", "-h"}, &out, &errb))
	assert.True(t, strings.HasPrefix(out.String(), "Usage: spiffe-server healthcheck [flags]\n"), out.String())
	assert.Contains(t, out.String(), "also -socketPath")
	assert.Empty(t, errb.String())
}
