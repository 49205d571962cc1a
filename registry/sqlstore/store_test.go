package sqlstore_test

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
)

func openSQLite(t *testing.T, path string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: path})
	require.NoError(t, err)
	return s
}

func TestSQLiteContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestSQLiteBatchContract(t *testing.T) {
	registrytest.RunBatch(t, func(t *testing.T) registrytest.BatchStore {
		s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestSQLiteDurable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	registrytest.RunDurable(t, func(t *testing.T) (registry.Store, io.Closer) {
		s := openSQLite(t, path)
		return s, s
	})
}
