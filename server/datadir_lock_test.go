package server_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/server"
)

// TestDataDirLocked: two servers on one data directory would journal over
// each other and lose CAs, so the second opening of a data directory is
// refused, naming the holder's pid, until the first server is closed.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	cfg, store, err := server.OpenSQLite(t.Context(), td, dir)
	require.NoError(t, err)
	defer store.Close()
	cfg.BindAddr = "127.0.0.1:0"

	inUse := "data directory " + dir + " is in use by pid " + strconv.Itoa(os.Getpid())
	_, err = server.DataDir(td, dir)
	assert.ErrorContains(t, err, inUse)
	assert.ErrorIs(t, err, server.ErrDataDirInUse)
	_, _, err = server.OpenSQLite(t.Context(), td, dir)
	assert.ErrorContains(t, err, inUse)

	s, err := server.New(t.Context(), cfg)
	require.NoError(t, err)
	_, err = server.DataDir(td, dir)
	assert.ErrorContains(t, err, inUse, "the server holds the lock it was given")
	require.NoError(t, s.Close())

	// Closed, the server has released the directory.
	again, err := server.DataDir(td, dir)
	require.NoError(t, err)
	assert.Equal(t, cfg.ServerID, again.ServerID)
	require.NoError(t, again.DataDirLock.Close())

	// A Config that New refuses is released too.
	refused, err := server.DataDir(td, dir)
	require.NoError(t, err)
	_, err = server.New(t.Context(), server.Config{DataDirLock: refused.DataDirLock})
	require.ErrorIs(t, err, server.ErrInvalidConfig)
	last, err := server.DataDir(td, dir)
	require.NoError(t, err, "New released the lock of the Config it refused")
	require.NoError(t, last.DataDirLock.Close())
}
