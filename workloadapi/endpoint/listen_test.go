package endpoint_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListenUnix(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "a.sock")

	t.Run("mode", func(t *testing.T) {
		for _, mode := range []os.FileMode{0o777, 0o770, 0o700} {
			lis, err := endpoint.ListenUnix(path, mode)
			require.NoError(t, err)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			assert.Equal(t, mode, fi.Mode().Perm())
			require.NoError(t, lis.Close())
			_, err = os.Stat(path)
			assert.True(t, os.IsNotExist(err), "Close removes the socket")
		}
	})
	t.Run("stale socket is replaced", func(t *testing.T) {
		lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		require.NoError(t, err)
		lis.SetUnlinkOnClose(false)
		require.NoError(t, lis.Close())
		lis2, err := endpoint.ListenUnix(path, 0o700)
		require.NoError(t, err)
		lis2.Close()
	})
	t.Run("live socket is refused", func(t *testing.T) {
		lis, err := endpoint.ListenUnix(path, 0o700)
		require.NoError(t, err)
		defer lis.Close()
		_, err = endpoint.ListenUnix(path, 0o700)
		require.ErrorContains(t, err, "is in use")
	})
	t.Run("other file is refused", func(t *testing.T) {
		file := filepath.Join(dir, "file")
		require.NoError(t, os.WriteFile(file, nil, 0o600))
		_, err := endpoint.ListenUnix(file, 0o700)
		require.ErrorContains(t, err, "exists and is not a socket")
	})
	t.Run("missing directory", func(t *testing.T) {
		_, err := endpoint.ListenUnix(filepath.Join(dir, "no", "s"), 0o700)
		require.ErrorContains(t, err, "endpoint: listen:")
	})
}
