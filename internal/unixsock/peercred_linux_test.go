package unixsock

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPeerCredentials(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	lis, err := Listen(path, 0o600)
	require.NoError(t, err)
	defer lis.Close()
	c, err := net.Dial("unix", path)
	require.NoError(t, err)
	defer c.Close()
	sc, err := lis.AcceptUnix()
	require.NoError(t, err)
	defer sc.Close()
	pid, uid, err := PeerCredentials(sc)
	require.NoError(t, err)
	assert.Equal(t, os.Getpid(), pid, "the kernel names the connecting process")
	assert.Equal(t, os.Getuid(), uid)

	// A closed connection has no descriptor left to ask.
	sc.Close()
	_, _, err = PeerCredentials(sc)
	assert.Error(t, err)
}
