package datadir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/dirlock"
	"github.com/spiffekit/spiffekit/registry"
)

// Property: the data directory is made private, holds one server at a
// time, and gives a restarted server its ID back.
func TestOpen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	st, err := Open(dir)
	require.NoError(t, err)
	info, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())
	require.NotEmpty(t, st.ServerID)
	b, err := os.ReadFile(filepath.Join(dir, serverIDFile))
	require.NoError(t, err)
	assert.Equal(t, st.ServerID+"\n", string(b))
	require.NotNil(t, st.Keys)
	require.NotNil(t, st.Journal)

	_, err = Open(dir)
	require.ErrorIs(t, err, dirlock.ErrInUse, "one server at a time")
	require.NoError(t, st.Lock.Close())

	again, err := Open(dir)
	require.NoError(t, err)
	assert.Equal(t, st.ServerID, again.ServerID, "the same ID after a restart")
	require.NoError(t, again.Lock.Close())

	// An empty ID file is filled with a new ID.
	require.NoError(t, os.WriteFile(filepath.Join(dir, serverIDFile), []byte("\n"), 0o600))
	fresh, err := Open(dir)
	require.NoError(t, err)
	assert.NotEmpty(t, fresh.ServerID)
	assert.NotEqual(t, st.ServerID, fresh.ServerID)
	require.NoError(t, fresh.Lock.Close())
}

// Property: what cannot be read or made is an error that says what, and
// leaves the directory unlocked.
func TestOpenFailures(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err := Open(filepath.Join(file, "state"))
	require.ErrorContains(t, err, "server: creating the data directory")

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, serverIDFile), 0o700))
	_, err = Open(dir)
	require.ErrorContains(t, err, "server: reading the server ID")
	lock, err := dirlock.Acquire(dir)
	require.NoError(t, err, "released after the failure")
	require.NoError(t, lock.Close())

	dir = t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, keysDir), nil, 0o600))
	_, err = Open(dir)
	require.Error(t, err, "the keys directory is a file")
	assert.True(t, strings.HasPrefix(err.Error(), "server: "), err.Error())
	lock, err = dirlock.Acquire(dir)
	require.NoError(t, err, "released after the failure")
	require.NoError(t, lock.Close())
}

// Property: a new server ID names the host and is unique and short enough
// to be stored.
func TestNewServerID(t *testing.T) {
	a, err := NewServerID()
	require.NoError(t, err)
	b, err := NewServerID()
	require.NoError(t, err)
	assert.NotEqual(t, a, b)
	assert.LessOrEqual(t, len(a), registry.MaxServerIDLen)
	if host, err := os.Hostname(); err == nil && host != "" {
		assert.True(t, strings.HasPrefix(a, host+"-"), a)
	}
}
