package launch_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// dial serves e's launch server on a real unix socket and returns a
// Client of it.
func (e *env) dial(t *testing.T) *launch.Client {
	t.Helper()
	_, path := e.api(t)
	c := launch.Dial(path)
	t.Cleanup(func() { c.Close() })
	return c
}

func TestClient(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t)
	id := spiffeid.RequireFromPath(td, "/sandbox/9")
	l, err := c.Launch(t.Context(), launch.Params{SPIFFEID: id, TTL: 20 * time.Minute, JWTSVIDTTL: time.Minute, Hint: "nine"})
	require.NoError(t, err)
	assert.Equal(t, id, l.SPIFFEID)
	assert.Equal(t, e.clock.Now().Add(20*time.Minute), l.ExpiresAt)
	assert.Equal(t, 20*time.Minute, l.X509SVIDTTL)
	assert.Equal(t, time.Minute, l.JWTSVIDTTL)
	assert.Nil(t, l.X509Authorities)

	info, err := c.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.Equal(t, launch.Info{ID: l.ID, SPIFFEID: id, Hint: "nine", ExpiresAt: l.ExpiresAt}, info)
	_, err = e.ls.Redeem(t.Context(), l.Handle, nil)
	require.NoError(t, err, "the client's handle is the server's")
	info, err = c.Get(t.Context(), l.ID)
	require.NoError(t, err)
	assert.True(t, info.Redeemed)

	require.NoError(t, c.End(t.Context(), l.ID))
	require.ErrorIs(t, c.End(t.Context(), l.ID), launch.ErrNotFound)
	_, err = c.Get(t.Context(), l.ID)
	require.ErrorIs(t, err, launch.ErrNotFound)

	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/spiffekit/server")})
	require.ErrorIs(t, err, launch.ErrInvalid)
	assert.ErrorContains(t, err, "reserved", "the server's reason reaches the launcher")
}

func TestClientRefusals(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.AllowedUIDs = []int{os.Getuid() + 4242} })
	_, err := e.dial(t).Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.ErrorIs(t, err, launch.ErrPermissionDenied)
	assert.EqualError(t, err, fmt.Sprintf("launch: permission denied: uid %d may not launch", os.Getuid()),
		"the server's message, once")

	e = newEnv(t, func(c *launch.Config) { c.Rate, c.Burst = 0.001, 1 })
	c := e.dial(t)
	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.NoError(t, err)
	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/b")})
	require.ErrorIs(t, err, launch.ErrRateLimited)

	// No server at the path.
	none := filepath.Join(t.TempDir(), "none.sock")
	_, err = launch.Dial(none).Get(t.Context(), "0123456789abcdef0123456789abcdef")
	require.ErrorContains(t, err, "launch: cannot reach the launcher API at "+none)
	assert.NotErrorIs(t, err, launch.ErrPermissionDenied)

	// A socket whose mode lets the caller not connect.
	if os.Getuid() != 0 {
		closed := filepath.Join(t.TempDir(), "closed.sock")
		lis, err := net.Listen("unix", closed)
		require.NoError(t, err)
		defer lis.Close()
		require.NoError(t, os.Chmod(closed, 0))
		_, err = launch.Dial(closed).Get(t.Context(), "0123456789abcdef0123456789abcdef")
		require.ErrorIs(t, err, launch.ErrPermissionDenied)
		assert.ErrorContains(t, err, "launch: cannot connect to "+closed)
	}

	// Something that is not the launcher API.
	dir, err := os.MkdirTemp("", "lc")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	lis, err := net.Listen("unix", path)
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.Write([]byte(`{"id": "x", "spiffe_id": "not an ID"}`))
			return
		}
		http.Error(w, "teapot", http.StatusTeapot)
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	defer func() { srv.Shutdown(context.Background()); <-done }()
	other := launch.Dial(path)
	defer other.Close()
	_, err = other.Get(t.Context(), "x")
	assert.ErrorContains(t, err, "the server's answer")
	err = other.End(t.Context(), "x")
	assert.ErrorContains(t, err, "418")
}
