//go:build unix

package calltest

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Binary's copy is the running binary, byte for byte, which every uid may
// read and run even under a umask that would keep them out.
func TestBinary(t *testing.T) {
	dir := t.TempDir()
	bin := func() string {
		defer syscall.Umask(syscall.Umask(0o077))
		return Binary(t, dir)
	}()
	assert.Equal(t, filepath.Join(dir, "caller"), bin)
	fi, err := os.Stat(bin)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), fi.Mode().Perm())
	self, err := os.Executable()
	require.NoError(t, err)
	assert.Equal(t, digest(t, self), digest(t, bin))
}

// digest returns the SHA-256 of the file at path.
func digest(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	require.NoError(t, err)
	return h.Sum(nil)
}
