// Package customserver runs examples/custom-server, an issuing server and
// a node agent assembled from spiffekit's packages with attestors of the
// example's own, and fetches an X509-SVID from it with go-spiffe's
// Workload API client, as any SPIFFE workload would.
package customserver

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	gsworkloadapi "github.com/spiffe/go-spiffe/v2/workloadapi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// build compiles the example into dir, in the spiffekit module (two
// directories up), as its README says.
func build(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "custom-server")
	cmd := exec.Command("go", "build", "-o", bin, "./examples/custom-server")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return bin
}

// start runs the example with its Workload API on a socket in dir and its
// entry for workloads working in cwd; it returns the socket's address
// once the program says it serves, and stops the program, expecting a
// clean exit, when the test ends.
func start(t *testing.T, bin, dir, cwd string) string {
	t.Helper()
	socket := filepath.Join(dir, "api.sock")
	cmd := exec.Command(bin, "-socket", socket, "-cwd", cwd)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
		require.NoError(t, cmd.Wait(), "the program exits 0 when interrupted: %s", stderr.String())
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, stderr.String())
	assert.Contains(t, line, "Workload API on unix://"+socket)
	return "unix://" + socket
}

func TestGoSPIFFEFetchesFromTheCustomServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "cs") // short: socket paths are limited
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := build(t, dir)
	cwd, err := os.Getwd()
	require.NoError(t, err)
	addr := start(t, bin, dir, cwd)

	// The agent serves once it has attested with its pre-shared key and
	// the server has signed the entry's SVID: retry until then.
	var svid *x509svid.SVID
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		svid, err = gsworkloadapi.FetchX509SVID(ctx, gsworkloadapi.WithAddr(addr))
		return err == nil
	}, 30*time.Second, 50*time.Millisecond, "%v", err)
	assert.Equal(t, "spiffe://example.org/workload", svid.ID.String())

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	bundles, err := gsworkloadapi.FetchX509Bundles(ctx, gsworkloadapi.WithAddr(addr))
	require.NoError(t, err)
	id, _, err := x509svid.Verify(svid.Certificates, bundles)
	require.NoError(t, err, "go-spiffe verifies the SVID with the bundle served beside it")
	assert.Equal(t, svid.ID, id)
}

// TestAnotherDirectoryGetsNothing: the example's own workload attestor
// counts: the same user, registered for another directory, is refused.
func TestAnotherDirectoryGetsNothing(t *testing.T) {
	dir, err := os.MkdirTemp("", "cs")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	addr := start(t, build(t, dir), dir, "/somewhere/else")
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = gsworkloadapi.FetchX509SVID(ctx, gsworkloadapi.WithAddr(addr))
		return status.Code(err) == codes.PermissionDenied
	}, 30*time.Second, 50*time.Millisecond, "%v", err)
}
