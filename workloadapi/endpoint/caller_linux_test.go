package endpoint_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/workloadpb"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestCallerRecordedAtAccept checks what the server records of the
// caller's process as it accepts the connection, for an attestor to check
// that the process it inspects later is still the one that connected,
// running the same file.
func TestCallerRecordedAtAccept(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	f := newFixture(t)
	h := &recordingHandler{MemoryHandler: f.handler, callers: make(chan endpoint.Caller, 10)}
	require.NoError(t, f.handler.Set(f.uid, f.snapshot(f.svid(t, webID, ""))))
	_, path := serve(t, endpoint.Config{Handler: h})
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	_, err = recvFirst(t, withHeader(t.Context()), workloadpb.NewWorkloadAPIClient(conn).FetchX509SVID, &workloadpb.X509SVIDRequest{})
	require.NoError(t, err)

	w := (<-h.callers).Workload()
	assert.Equal(t, os.Getpid(), w.PID)
	assert.Equal(t, &attest.Credentials{UID: os.Getuid(), GID: os.Getgid()}, w.Credentials)
	require.NotNil(t, w.PIDFD)
	a, err := unix.New(unix.Config{})
	require.NoError(t, err)
	start, err := a.StartTime(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, start, w.StartTime)
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat("/proc/self/exe", &st))
	assert.Equal(t, &attest.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)}, w.Executable)
	_, err = a.Attest(t.Context(), w)
	require.NoError(t, err)

	// The pidfd lives as long as the connection: the server closes it
	// with the connection, and the caller can no longer be attested.
	require.NoError(t, conn.Close())
	require.Eventually(t, func() bool {
		rc, err := w.PIDFD.SyscallConn()
		return err == nil && rc.Control(func(uintptr) {}) != nil
	}, 10*time.Second, 5*time.Millisecond)
	_, err = a.Attest(t.Context(), w)
	require.Error(t, err)
}
