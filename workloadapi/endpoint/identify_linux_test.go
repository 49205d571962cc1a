package endpoint

import (
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
)

// TestIdentifyExitedBeforeAccept checks a connection whose process exited
// before the server accepted it: whoever holds the connection now is
// another process, and its PID may name yet another, so every call on it
// is denied.
func TestIdentifyExitedBeforeAccept(t *testing.T) {
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	lis, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer lis.Close()

	// The test binary, as a caller that connects and exits (main_test.go).
	self, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(self, lis.Addr().String(), "0")
	cmd.Env = append(os.Environ(), "ENDPOINT_TEST_CALLER=dial")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Run()) // connected, exited, reaped
	conn, err := lis.Accept()
	require.NoError(t, err)
	defer conn.Close()

	c, err := identify(conn)
	require.ErrorIs(t, err, ErrNoIdentity)
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.Equal(t, cmd.Process.Pid, c.PID, "the kernel's credentials are kept, for the log")
	assert.Equal(t, os.Getuid(), c.UID)
	assert.Nil(t, c.Workload().PIDFD)
	assert.Equal(t, codes.PermissionDenied, status.Code(grpcError(slog.New(slog.DiscardHandler), "FetchX509SVID", c, err)))
}
