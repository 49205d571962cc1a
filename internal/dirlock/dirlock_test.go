package dirlock

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAcquire(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	require.NoError(t, err)
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(os.Getpid())+"\n", string(b), "the lock file names its holder")
	fi, err := os.Stat(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// A second holder, even in the same process, is refused and told who
	// holds the directory.
	_, err = Acquire(dir)
	require.ErrorIs(t, err, ErrInUse)
	assert.EqualError(t, err, "data directory "+dir+" is in use by pid "+strconv.Itoa(os.Getpid()))

	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close is idempotent")
	b, err = os.ReadFile(filepath.Join(dir, FileName))
	require.NoError(t, err)
	assert.Empty(t, b, "a released lock names no holder")

	// Released, the directory can be locked again.
	l2, err := Acquire(dir)
	require.NoError(t, err)
	require.NoError(t, l2.Close())
	assert.NoError(t, (*Lock)(nil).Close())
}

func TestAcquireHolderUnknown(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	require.NoError(t, err)
	defer l.Close()
	// A holder that has not written its pid yet.
	require.NoError(t, os.WriteFile(filepath.Join(dir, FileName), nil, 0o600))
	_, err = Acquire(dir)
	assert.EqualError(t, err, "data directory "+dir+" is in use by another process")
}

func TestAcquireFails(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := Acquire(missing)
	require.Error(t, err)
	assert.ErrorIs(t, err, os.ErrNotExist)
	assert.False(t, errors.Is(err, ErrInUse))
	assert.EqualError(t, err, "locking the data directory: open "+filepath.Join(missing, FileName)+": no such file or directory")
}
