package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestSQLiteFederationContract(t *testing.T) {
	registrytest.RunFederation(t, func(t *testing.T) registry.FederationStore {
		s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestMySQLFederationContract(t *testing.T) {
	registrytest.RunFederation(t, func(t *testing.T) registry.FederationStore {
		s := openMySQL(t, mysqltest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresFederationContract(t *testing.T) {
	registrytest.RunFederation(t, func(t *testing.T) registry.FederationStore {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

// TestFederationCreateOnceAcrossServers races the creation of one
// relationship through several stores on one database, as servers sharing
// it would.
func TestFederationCreateOnceAcrossServers(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "registry.db")
		registrytest.FederationCreateOnce(t, openServers[registry.FederationStore](t, func(t *testing.T) *sqlstore.Store { return openSQLite(t, path) }), 6)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.New(t)
		registrytest.FederationCreateOnce(t, openServers[registry.FederationStore](t, func(t *testing.T) *sqlstore.Store { return openPostgres(t, dsn) }), 6)
	})
	t.Run("MySQL", func(t *testing.T) {
		dsn := mysqltest.New(t)
		registrytest.FederationCreateOnce(t, openServers[registry.FederationStore](t, func(t *testing.T) *sqlstore.Store { return openMySQL(t, dsn) }), 6)
	})
}

// TestFederationDurable checks that relationships survive a restart, and
// that a row the database changed behind the store's back is refused when
// read, not handed out.
func TestFederationDurable(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	want, err := s.CreateFederationRelationship(ctx, registry.FederationRelationship{
		TrustDomain:           spiffeid.RequireTrustDomainFromString("b.example"),
		BundleEndpointURL:     "https://b.example:8443",
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID:      spiffeid.RequireFromString("spiffe://b.example/spiffekit/server"),
		TrustDomainBundle:     []byte(`{"keys":[]}`),
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	s = openSQLite(t, path)
	got, err := s.GetFederationRelationship(ctx, want.TrustDomain)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	require.NoError(t, s.Close())

	for _, tt := range []struct{ name, stmt string }{
		{"bad trust domain", `UPDATE registry_federation_relationships SET trust_domain = 'B!'`},
		{"bad endpoint ID", `UPDATE registry_federation_relationships SET endpoint_spiffe_id = 'spiffe://'`},
		{"bad profile", `UPDATE registry_federation_relationships SET bundle_endpoint_profile = 'http'`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "registry.db")
			s := openSQLite(t, p)
			_, err := s.CreateFederationRelationship(ctx, want)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			execSQLite(t, p, tt.stmt)
			s = openSQLite(t, p)
			defer s.Close()
			_, err = s.ListFederationRelationships(ctx)
			require.ErrorContains(t, err, "decoding stored federation relationship")
		})
	}
}

// execSQLite runs one statement on the SQLite database at path, as an
// operator or a faulty tool might, behind the store's back.
func execSQLite(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(stmt)
	require.NoError(t, err)
}
