//go:build windows

package workloadapi

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/Microsoft/go-winio"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// startPipeEndpoint serves srv on a new named pipe until the test ends and
// returns the pipe's name.
func startPipeEndpoint(t *testing.T, srv *fakeServer) string {
	t.Helper()
	name := fmt.Sprintf("spiffekit-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	lis, err := winio.ListenPipe(`\\.\pipe\`+name, nil)
	require.NoError(t, err)
	g := grpc.NewServer()
	workloadpb.RegisterWorkloadAPIServer(g, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	t.Cleanup(func() { g.Stop(); <-done })
	return name
}

// A client reaches the Workload API on a named pipe, named by option or by
// address, as go-spiffe's does.
func TestClientOnNamedPipe(t *testing.T) {
	f := newFixture(t)
	srv := newFakeServer()
	srv.x509 = f.x509Response("/a")
	name := startPipeEndpoint(t, srv)
	for _, opt := range []ClientOption{WithNamedPipeName(name), WithAddr("npipe:" + name)} {
		c, err := New(t.Context(), opt, WithBackoffStrategy(fastBackoff{}))
		require.NoError(t, err)
		svid, err := c.FetchX509SVID(t.Context())
		require.NoError(t, err)
		assert.Equal(t, f.id("/a"), svid.ID)
		require.NoError(t, c.Close())
	}
	t.Setenv(SocketEnv, "npipe:"+name)
	c, err := New(t.Context())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.FetchX509SVID(t.Context())
	require.NoError(t, err)
}

func TestNamedPipeOptionErrors(t *testing.T) {
	_, err := New(t.Context(), WithNamedPipeName("agent"), WithAddr("npipe:agent"))
	assert.EqualError(t, err, "workloadapi: only one of WithAddr or WithNamedPipeName options can be used, not both")
	_, err = New(t.Context(), WithNamedPipeName("../agent"))
	assert.ErrorContains(t, err, `must not have empty, "." or ".." elements`)
	_, err = New(t.Context(), WithAddr("unix:///run/agent.sock"))
	assert.Equal(t, ErrInvalidEndpointScheme, err)
}
