package server_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/server"
)

// runStore is a memstore with a long-lived part, as registry/sqlstore has.
type runStore struct {
	*memstore.Store
	runs atomic.Int32
	fail error
}

func (r *runStore) Run(ctx context.Context) error {
	r.runs.Add(1)
	if r.fail != nil {
		return r.fail
	}
	<-ctx.Done()
	return ctx.Err()
}

// TestRunRunsStores: Run runs each store value with a Run method once,
// however many Stores fields hold it, and a store's failure stops the
// server.
func TestRunRunsStores(t *testing.T) {
	st := &runStore{Store: memstore.New(memstore.Config{})}
	other := &runStore{Store: memstore.New(memstore.Config{})}
	stores := server.StoresOf(st)
	stores.Bundles = other
	s := nodetest.StartServer(t, server.Config{Stores: stores, KeyManager: keymanager.NewMemory()})
	require.Eventually(t, func() bool { return st.runs.Load() == 1 && other.runs.Load() == 1 }, 10*time.Second, 5*time.Millisecond)
	s.Stop()
	assert.Equal(t, int32(1), st.runs.Load(), "one Run for the four fields holding st")

	errListen := errors.New("listener lost")
	failing := &runStore{Store: memstore.New(memstore.Config{}), fail: errListen}
	cfg := memConfig()
	cfg.Stores = server.StoresOf(failing)
	srv, err := server.New(t.Context(), cfg)
	require.NoError(t, err)
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- srv.Run(t.Context()) }()
	select {
	case err := <-done:
		require.ErrorIs(t, err, errListen)
	case <-time.After(20 * time.Second):
		t.Fatal("the store's failure did not stop the server")
	}
}

func TestDataDir(t *testing.T) {
	_, err := server.DataDir(td, "")
	require.ErrorIs(t, err, server.ErrInvalidConfig)

	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	_, err = server.DataDir(td, file)
	require.ErrorIs(t, err, syscall.ENOTDIR)
	assert.ErrorContains(t, err, "server: creating the data directory")
	_, _, err = server.OpenSQLite(t.Context(), td, file)
	require.ErrorIs(t, err, syscall.ENOTDIR)
	assert.ErrorContains(t, err, "server: creating the data directory")

	// The server ID is made once and kept.
	dir := t.TempDir()
	a, err := server.DataDir(td, dir)
	require.NoError(t, err)
	require.NoError(t, a.DataDirLock.Close())
	b, err := server.DataDir(td, dir)
	require.NoError(t, err)
	require.NoError(t, b.DataDirLock.Close())
	assert.NotEmpty(t, a.ServerID)
	assert.Equal(t, a.ServerID, b.ServerID)
	assert.Equal(t, td, a.TrustDomain)
	assert.NotNil(t, a.KeyManager)
	assert.NotNil(t, a.Journal)

	// A keys directory others may read is refused.
	loose := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(loose, "keys"), 0o755))
	_, err = server.DataDir(td, loose)
	require.ErrorContains(t, err, "server: keymanager: key directory "+filepath.Join(loose, "keys")+" has permissions 0755; group and others must have none")

	// A database that cannot be opened.
	bad := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(bad, "datastore.sqlite3"), 0o700))
	_, _, err = server.OpenSQLite(t.Context(), td, bad)
	require.ErrorContains(t, err, "server: opening the datastore")
}

// TestServerIDWithoutDataDir: a server given no ID makes a random one.
func TestServerIDWithoutDataDir(t *testing.T) {
	cfg := memConfig()
	a, err := server.New(t.Context(), cfg)
	require.NoError(t, err)
	defer a.Close()
	cfg = memConfig()
	cfg.ServerID = "fixed"
	b, err := server.New(t.Context(), cfg)
	require.NoError(t, err)
	defer b.Close()
	assert.NotEmpty(t, a.ID())
	assert.Equal(t, "fixed", b.ID())
}
