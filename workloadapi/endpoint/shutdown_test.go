package endpoint_test

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// A client that opens an HTTP/2 connection and then neither speaks nor
// closes it must not keep Serve from returning once its ctx is done: the
// server drains it, and ShutdownGrace bounds how long that may take.
func TestServeReturnsDespiteSilentClient(t *testing.T) {
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s.sock")
	lis, err := endpoint.ListenUnix(socket, 0o700)
	require.NoError(t, err)

	srv, err := endpoint.New(endpoint.Config{
		Handler:       endpoint.NewMemoryHandler(endpoint.MemoryConfig{}),
		ShutdownGrace: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis) }()

	conn, err := net.Dial("unix", socket)
	require.NoError(t, err)
	defer conn.Close()
	// The HTTP/2 client preface and an empty SETTINGS frame, then silence.
	_, err = conn.Write(append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0))
	require.NoError(t, err)
	// Read the server's SETTINGS frame and acknowledge it: the connection
	// is up, and from now on the client says nothing more.
	header := make([]byte, 9)
	_, err = io.ReadFull(conn, header)
	require.NoError(t, err)
	require.Equal(t, byte(4), header[3], "first frame is SETTINGS")
	_, err = io.ReadFull(conn, make([]byte, int(header[0])<<16|int(header[1])<<8|int(header[2])))
	require.NoError(t, err)
	_, err = conn.Write([]byte{0, 0, 0, 4, 1, 0, 0, 0, 0})
	require.NoError(t, err)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context was cancelled")
	}
}
