package sqlstore_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openPostgres(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn})
	require.NoError(t, err)
	return s
}

func TestPostgresContract(t *testing.T) {
	registrytest.Run(t, func(t *testing.T) registry.Store {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresBatchContract(t *testing.T) {
	registrytest.RunBatch(t, func(t *testing.T) registrytest.BatchStore {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresDurable(t *testing.T) {
	dsn := pgtest.New(t)
	registrytest.RunDurable(t, func(t *testing.T) (registry.Store, io.Closer) {
		s := openPostgres(t, dsn)
		return s, s
	})
}
