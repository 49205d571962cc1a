package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func shortDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "us")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestListen(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	lis, err := Listen(path, 0o600)
	require.NoError(t, err)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// A live socket is refused.
	_, err = Listen(path, 0o600)
	assert.ErrorContains(t, err, "in use")
	require.NoError(t, lis.Close())
	_, err = os.Stat(path)
	assert.True(t, os.IsNotExist(err), "closing removes the socket file")
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(shortDir(t), "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	l.SetUnlinkOnClose(false)
	require.NoError(t, l.Close()) // the file stays, nobody listens
	lis, err := Listen(path, 0o777)
	require.NoError(t, err)
	defer lis.Close()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o777), fi.Mode().Perm())
}

func TestOtherFilesAreRefused(t *testing.T) {
	dir := shortDir(t)
	file := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(file, []byte("data"), 0o600))
	_, err := Listen(file, 0o600)
	assert.ErrorContains(t, err, "is not a socket")
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "data", string(data), "left alone")

	_, err = Listen(filepath.Join(dir, "missing", "s.sock"), 0o600)
	assert.ErrorContains(t, err, "listen:")
	_, err = Listen(filepath.Join(file, "s.sock"), 0o600) // a path through a file
	assert.ErrorContains(t, err, "not a directory")
}

func TestSocketOfAnotherKindIsLeftAlone(t *testing.T) {
	path := filepath.Join(shortDir(t), "dgram.sock")
	g, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	require.NoError(t, err)
	defer g.Close()
	// A stream dial fails with something else than "refused": the file is
	// not provably stale, so it stays.
	_, err = Listen(path, 0o600)
	require.Error(t, err)
	_, err = os.Stat(path)
	assert.NoError(t, err)
}
