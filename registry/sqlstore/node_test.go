package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/registrytest"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestSQLiteNodeContract(t *testing.T) {
	registrytest.RunNode(t, func(t *testing.T) registrytest.NodeStore {
		s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

func TestPostgresNodeContract(t *testing.T) {
	registrytest.RunNode(t, func(t *testing.T) registrytest.NodeStore {
		s := openPostgres(t, pgtest.New(t))
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}

// TestTokenSingleUseAcrossServers races DeleteToken through several stores
// on one database, as several servers sharing it would, each with its own
// connection pool.
func TestTokenSingleUseAcrossServers(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "registry.db")
		registrytest.TokenSingleUse(t, openServers[registry.TokenStore](t, func(t *testing.T) *sqlstore.Store { return openSQLite(t, path) }), 5, 12)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.New(t)
		registrytest.TokenSingleUse(t, openServers[registry.TokenStore](t, func(t *testing.T) *sqlstore.Store { return openPostgres(t, dsn) }), 5, 12)
	})
	t.Run("MySQL", func(t *testing.T) {
		dsn := mysqltest.New(t)
		registrytest.TokenSingleUse(t, openServers[registry.TokenStore](t, func(t *testing.T) *sqlstore.Store { return openMySQL(t, dsn) }), 5, 12)
	})
}

// TestAgentUpdateAcrossServers races UpdateAgent against DeleteAgent
// through two stores on one database, as a server renewing an agent and
// another evicting it would: the eviction is never undone.
func TestAgentUpdateAcrossServers(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "registry.db")
		registrytest.AgentUpdateNeverRecreates(t, openServers[registry.AgentStore](t, func(t *testing.T) *sqlstore.Store { return openSQLite(t, path) }), 20)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.New(t)
		registrytest.AgentUpdateNeverRecreates(t, openServers[registry.AgentStore](t, func(t *testing.T) *sqlstore.Store { return openPostgres(t, dsn) }), 20)
	})
	t.Run("MySQL", func(t *testing.T) {
		dsn := mysqltest.New(t)
		registrytest.AgentUpdateNeverRecreates(t, openServers[registry.AgentStore](t, func(t *testing.T) *sqlstore.Store { return openMySQL(t, dsn) }), 20)
	})
}

// openServers opens three stores on one database, as three servers
// sharing it would.
func openServers[S any](t *testing.T, open func(t *testing.T) *sqlstore.Store) []S {
	var out []S
	for range 3 {
		s := open(t)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		out = append(out, any(s).(S))
	}
	return out
}

// TestNodeDurable checks that node-side records survive a restart.
func TestNodeDurable(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	a, err := s.PutAgent(ctx, registry.Agent{
		ID:           spiffeid.RequireFromString("spiffe://example.org/agent/1"),
		AttestorType: "join_token",
		Selectors:    []attest.Selector{{Type: "join_token", Value: "t1"}},
		SerialNumber: "01ab",
		ExpiresAt:    time.Now().Add(time.Hour),
		CanReattest:  true,
	})
	require.NoError(t, err)
	tok := registry.JoinToken{ID: "t1", SecretHash: make([]byte, 32), ExpiresAt: time.Now().Add(time.Hour)}
	require.NoError(t, s.CreateToken(ctx, tok))
	require.NoError(t, s.Close())

	s = openSQLite(t, path)
	defer s.Close()
	got, err := s.GetAgent(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, got)
	gotTok, err := s.GetToken(ctx, tok.ID)
	require.NoError(t, err)
	assert.Equal(t, registry.StoreTime(tok.ExpiresAt), gotTok.ExpiresAt)
}

// TestCorruptNodeRows checks that node-side rows the store did not write
// are rejected rather than served.
func TestCorruptNodeRows(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	defer s.Close()
	agentID := spiffeid.RequireFromString("spiffe://example.org/agent/1")
	_, err := s.PutAgent(ctx, registry.Agent{ID: agentID, AttestorType: "join_token"})
	require.NoError(t, err)
	require.NoError(t, s.CreateToken(ctx, registry.JoinToken{ID: "t1", SecretHash: make([]byte, 32), ExpiresAt: time.Now().Add(time.Hour)}))
	td := spiffeid.RequireTrustDomainFromString("b.example")
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: td, Document: []byte("{}")})
	require.NoError(t, err)
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s1", Document: []byte("{}"), ExpiresAt: time.Now().Add(time.Hour)}))

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		_, err := db.Exec(q, args...)
		require.NoError(t, err)
	}

	agentRows := []struct{ col, value string }{
		{"selectors", "not json"},
		{"selectors", `["nocolon"]`},
		{"selectors", `["a:b","a:b"]`},
		{"serial_number", "XYZ"},
		{"attestor_type", ""},
		{"id", "http://example.org/agent/1"},
	}
	for _, r := range agentRows {
		exec(`UPDATE registry_agents SET `+r.col+` = ?`, r.value)
		_, err = s.GetAgent(ctx, agentID)
		if r.col != "id" {
			require.ErrorContains(t, err, "sqlstore: reading agent: decoding stored agent", r.value)
		}
		_, err = s.ListAgents(ctx)
		require.ErrorContains(t, err, "sqlstore: listing agents: decoding stored agent", r.value)
		exec(`DELETE FROM registry_agents`)
		_, err = s.PutAgent(ctx, registry.Agent{ID: agentID, AttestorType: "join_token"})
		require.NoError(t, err)
	}
	tooMany := "[" + `"a:0"` + repeatSelectors(registry.MaxSelectors) + "]"
	exec(`UPDATE registry_agents SET selectors = ?`, tooMany)
	_, err = s.GetAgent(ctx, agentID)
	require.ErrorContains(t, err, "selectors")

	exec(`UPDATE registry_join_tokens SET secret_hash = ?`, []byte{1, 2})
	_, err = s.GetToken(ctx, "t1")
	require.ErrorContains(t, err, "sqlstore: decoding stored join token")
	exec(`UPDATE registry_join_tokens SET secret_hash = ?, agent_id = 'bad'`, make([]byte, 32))
	_, err = s.GetToken(ctx, "t1")
	require.ErrorContains(t, err, "sqlstore: decoding stored join token")

	exec(`UPDATE registry_bundles SET document = ?`, []byte{})
	_, err = s.GetBundle(ctx, td)
	require.ErrorContains(t, err, "sqlstore: reading bundle: decoding stored bundle")
	exec(`UPDATE registry_bundles SET trust_domain = 'Bad TD'`)
	_, err = s.ListBundles(ctx)
	require.ErrorContains(t, err, "sqlstore: listing bundles: decoding stored bundle")

	for _, auths := range []string{
		`not json`,
		`[{"kind":"RSA key","id":"ab","state":"old","not_after_us":1}]`,
		`[{"kind":"jwt","id":"ab","state":"gone","not_after_us":1}]`,
		`[{"kind":"x509","id":"ab","state":"old","not_after_us":1}]`,
	} {
		exec(`UPDATE registry_server_bundles SET authorities = ?`, auths)
		_, err = s.ListServerBundles(ctx, time.Now())
		require.ErrorContains(t, err, "sqlstore: decoding stored server bundle", auths)
	}
	exec(`UPDATE registry_server_bundles SET authorities = '[]'`)
	list, err := s.ListServerBundles(ctx, time.Now())
	require.NoError(t, err)
	assert.Nil(t, list[0].Authorities, "an empty list is none")
	exec(`UPDATE registry_server_bundles SET server_id = ''`)
	_, err = s.ListServerBundles(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: decoding stored server bundle")
	exec(`UPDATE registry_server_bundles SET expires_at = 'later'`)
	_, err = s.ListServerBundles(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: listing server bundles")

	_, err = s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityJWT, AuthorityID: "k", ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	exec(`UPDATE registry_authority_marks SET kind = 'SSH key'`)
	_, err = s.ListAuthorityMarks(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: decoding stored authority mark")
	exec(`UPDATE registry_authority_marks SET expires_at = 'later'`)
	_, err = s.ListAuthorityMarks(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: listing authority marks")
}

func repeatSelectors(n int) string {
	out := ""
	for i := range n {
		out += `,"a:` + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `"`
	}
	return out
}

// TestNodeClosed checks that a closed store reports errors on every
// node-side method.
func TestNodeClosed(t *testing.T) {
	ctx := t.Context()
	s := openSQLite(t, filepath.Join(t.TempDir(), "registry.db"))
	require.NoError(t, s.Close())
	agentID := spiffeid.RequireFromString("spiffe://example.org/agent/1")
	td := spiffeid.RequireTrustDomainFromString("b.example")
	_, err := s.PutAgent(ctx, registry.Agent{ID: agentID, AttestorType: "join_token"})
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.GetAgent(ctx, agentID)
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.ListAgents(ctx)
	require.ErrorContains(t, err, "sqlstore: ")
	require.ErrorContains(t, s.DeleteAgent(ctx, agentID), "sqlstore: ")
	require.ErrorContains(t, s.CreateToken(ctx, registry.JoinToken{ID: "t1", SecretHash: make([]byte, 32), ExpiresAt: time.Now()}), "sqlstore: ")
	_, err = s.GetToken(ctx, "t1")
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.DeleteToken(ctx, "t1")
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.PruneTokens(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.PutBundle(ctx, registry.FederatedBundle{TrustDomain: td, Document: []byte("{}")})
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.GetBundle(ctx, td)
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.ListBundles(ctx)
	require.ErrorContains(t, err, "sqlstore: ")
	require.ErrorContains(t, s.DeleteBundle(ctx, td), "sqlstore: ")
	require.ErrorContains(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s", Document: []byte("{}"), ExpiresAt: time.Now()}), "sqlstore: ")
	_, err = s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s", Kind: registry.AuthorityJWT, AuthorityID: "k", ExpiresAt: time.Now()})
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.ListAuthorityMarks(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: ")
	_, err = s.ListServerBundles(ctx, time.Now())
	require.ErrorContains(t, err, "sqlstore: ")
}

// TestMigrateToVersion2 opens a database at schema version 1, as written
// before the node-side tables existed, and checks that opening it adds them
// and keeps the entries.
func TestMigrateToVersion2(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	e, err := s.Create(ctx, registry.Entry{
		SPIFFEID:  spiffeid.RequireFromString("spiffe://example.org/w"),
		ParentID:  spiffeid.RequireFromString("spiffe://example.org/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
	})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	for _, table := range []string{"registry_agents", "registry_join_tokens", "registry_bundles", "registry_server_bundles", "registry_authority_marks", "registry_federation_relationships"} {
		_, err := db.Exec(`DROP TABLE ` + table)
		require.NoError(t, err)
	}
	_, err = db.Exec(`DELETE FROM registry_schema_migrations WHERE version >= 2`)
	require.NoError(t, err)

	s = openSQLite(t, path)
	defer s.Close()
	got, err := s.Get(ctx, e.ID)
	require.NoError(t, err)
	assert.Equal(t, e, got)
	require.NoError(t, s.CreateToken(ctx, registry.JoinToken{ID: "t1", SecretHash: make([]byte, 32), ExpiresAt: time.Now().Add(time.Hour)}))
	var version int
	require.NoError(t, db.QueryRow(`SELECT MAX(version) FROM registry_schema_migrations`).Scan(&version))
	assert.Equal(t, 6, version, "and every later migration")
}

// TestMigrateToVersion5 opens a database at schema version 4, whose server
// bundles have no authorities and which has no authority marks nor
// federation relationships, and checks that opening it keeps the server
// bundles, with no authorities, and adds the marks and the relationships.
func TestMigrateToVersion5(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "registry.db")
	s := openSQLite(t, path)
	require.NoError(t, s.Close())
	db, err := sql.Open("sqlite", path)
	require.NoError(t, err)
	defer db.Close()
	expires := time.Now().Add(time.Hour).UnixMicro()
	for _, stmt := range []string{
		`DROP TABLE registry_federation_relationships`,
		`DELETE FROM registry_schema_migrations WHERE version = 6`,
		`DROP TABLE registry_authority_marks`,
		`ALTER TABLE registry_server_bundles DROP COLUMN authorities`,
		`DELETE FROM registry_schema_migrations WHERE version = 5`,
		`INSERT INTO registry_server_bundles (server_id, document, expires_at, updated_at) VALUES ('s1', '{}', ` + strconv.FormatInt(expires, 10) + `, 1)`,
	} {
		_, err := db.Exec(stmt)
		require.NoError(t, err, stmt)
	}

	s = openSQLite(t, path)
	defer s.Close()
	list, err := s.ListServerBundles(ctx, time.Now())
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, "s1", list[0].ServerID)
	assert.Nil(t, list[0].Authorities)
	_, err = s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityX509, AuthorityID: "ab", ExpiresAt: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	_, err = s.CreateFederationRelationship(ctx, registry.FederationRelationship{TrustDomain: spiffeid.RequireTrustDomainFromString("b.example"),
		BundleEndpointURL: "https://b.example/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.NoError(t, err)
}
