package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// startRun runs the program's run with the Workload API on a new socket
// and the entry for workloads in dir, until the test ends; it returns the
// socket's address and what run printed once it printed it.
func startRun(t *testing.T, dir string) string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "cs") // short: socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	socket := filepath.Join(tmp, "api.sock")
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, socket, dir, pw); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Error("run did not stop")
		}
	})
	line := make([]byte, 512)
	n, err := pr.Read(line)
	require.NoError(t, err)
	go io.Copy(io.Discard, pr)
	assert.Contains(t, string(line[:n]), "Workload API on unix://"+socket)
	return "unix://" + socket
}

// TestRun: a workload of this user in the registered directory (this
// test, in its package directory) gets spiffe://example.org/workload,
// signed by the CA of the bundle it is served with.
func TestRun(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first: runs after run has stopped
	cwd, err := os.Getwd()
	require.NoError(t, err)
	addr := startRun(t, cwd)
	var c *workloadapi.X509Context
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c, err = workloadapi.FetchX509Context(ctx, workloadapi.WithAddr(addr))
		return err == nil
	}, 20*time.Second, 20*time.Millisecond, "%v", err)
	require.Len(t, c.SVIDs, 1)
	assert.Equal(t, "spiffe://example.org/workload", c.SVIDs[0].ID.String())
	_, _, err = x509svid.Verify(c.SVIDs[0].Certificates, c.Bundles)
	require.NoError(t, err)
}

// TestRunOtherDirectory: the same user working elsewhere gets nothing.
func TestRunOtherDirectory(t *testing.T) {
	addr := startRun(t, "/somewhere/else")
	var err error
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(addr))
		return status.Code(err) == codes.PermissionDenied
	}, 20*time.Second, 20*time.Millisecond, "%v", err)
}

func TestPSK(t *testing.T) {
	key := []byte("key")
	srv := pskServer{key: key}
	exchange := func(c pskClient) (attest.NodeResult, error) {
		payload, err := c.Payload(t.Context())
		require.NoError(t, err)
		return srv.Attest(t.Context(), td, payload, c.Respond)
	}
	res, err := exchange(pskClient{node: "node-1", key: key})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/spiffekit/agent/psk/node-1", res.AgentID.String())
	assert.True(t, res.Selectors.Contains(attest.Selector{Type: "psk", Value: "node:node-1"}))
	assert.True(t, res.CanReattest)
	assert.Equal(t, pskType, pskClient{}.Type())
	assert.Equal(t, pskType, srv.Type())

	_, err = exchange(pskClient{node: "node-1", key: []byte("guess")})
	require.ErrorIs(t, err, attest.ErrNodeRejected, "a wrong key")
	_, err = exchange(pskClient{node: "../server", key: key})
	require.ErrorIs(t, err, attest.ErrNodeRejected, "a node name that is no path segment")

	// An answer for another node is no answer for this one.
	replay := func(ctx context.Context, nonce []byte) ([]byte, error) { return mac(key, nonce, "node-2"), nil }
	_, err = srv.Attest(t.Context(), td, []byte("node-1"), replay)
	require.ErrorIs(t, err, attest.ErrNodeRejected)

	// A broken exchange is no rejection.
	broken := errors.New("stream broken")
	_, err = srv.Attest(t.Context(), td, []byte("node-1"), func(context.Context, []byte) ([]byte, error) { return nil, broken })
	require.ErrorIs(t, err, broken)
	assert.NotErrorIs(t, err, attest.ErrNodeRejected)
}

func TestCwdAttestor(t *testing.T) {
	cwd, err := os.Getwd()
	require.NoError(t, err)
	sels, err := cwdAttestor{}.Attest(t.Context(), attest.Workload{PID: os.Getpid()})
	require.NoError(t, err)
	assert.Equal(t, []attest.Selector{{Type: "cwd", Value: cwd}}, sels.Slice())

	_, err = cwdAttestor{}.Attest(t.Context(), attest.Workload{PID: 1 << 30})
	require.ErrorIs(t, err, attest.ErrRejected, "no such process")
}

// TestRunFailsEarly: a socket that cannot be made is an error, and run
// leaves nothing running.
func TestRunFailsEarly(t *testing.T) {
	defer leaktest.Check(t)()
	err := run(t.Context(), "/nonexistent/api.sock", "/", io.Discard)
	require.ErrorContains(t, err, "endpoint:")
}
