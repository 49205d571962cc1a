package sqlstore_test

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
)

// TestUnknownAuthorityKinds checks that authorities and marks of a kind a
// later version added, written to a shared database by a server of that
// version, are left out of the lists, counted and logged once, and that
// the rest is listed: a new kind must not break the bundle refresh of a
// server of this version.
func TestUnknownAuthorityKinds(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "registry.db")
		var logs logtest.Buffer
		s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: path, Logger: logs.Logger()})
		require.NoError(t, err)
		defer s.Close()
		db, err := sql.Open("sqlite", path)
		require.NoError(t, err)
		defer db.Close()
		checkUnknownKinds(t, s, db, "?", &logs)
	})
	t.Run("PostgreSQL", func(t *testing.T) {
		dsn := pgtest.New(t)
		var logs logtest.Buffer
		s, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: dsn, Logger: logs.Logger()})
		require.NoError(t, err)
		defer s.Close()
		db, err := sql.Open("pgx", dsn)
		require.NoError(t, err)
		defer db.Close()
		checkUnknownKinds(t, s, db, "$1", &logs)
	})
}

func checkUnknownKinds(t *testing.T, s *sqlstore.Store, db *sql.DB, placeholder string, logs *logtest.Buffer) {
	ctx := t.Context()
	now := time.Now()
	exp := now.Add(time.Hour)
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{
		ServerID: "s1", Document: []byte("{}"), ExpiresAt: exp,
		Authorities: []registry.ServerAuthority{
			{Kind: registry.AuthorityJWT, ID: "k1", State: registry.AuthorityOld, Tainted: true, NotAfter: exp},
		},
	}))
	require.NoError(t, s.PutServerBundle(ctx, registry.ServerBundle{ServerID: "s2", Document: []byte("{}"), ExpiresAt: exp}))
	_, err := s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityJWT, AuthorityID: "k1", ExpiresAt: exp})
	require.NoError(t, err)
	_, err = s.PutAuthorityMark(ctx, registry.AuthorityMark{ServerID: "s1", Kind: registry.AuthorityWIT, AuthorityID: "w1", ExpiresAt: exp})
	require.NoError(t, err)

	// What a server of a later version writes: its own share with an
	// authority of a new kind "ssh" (with a state this version does not
	// know either), and a mark on one.
	us := exp.UnixMicro()
	later := `[{"kind":"x509-next","id":"n1","state":"retiring","not_after_us":` + itoa(us) + `},` +
		`{"kind":"jwt","id":"k2","state":"active","not_after_us":` + itoa(us) + `},` +
		`{"kind":"ssh","id":"s1","state":"old","tainted":true,"not_after_us":` + itoa(us) + `}]`
	_, err = db.Exec(`UPDATE registry_server_bundles SET authorities = `+placeholder+` WHERE server_id = 's2'`, later)
	require.NoError(t, err)
	_, err = db.Exec(`UPDATE registry_authority_marks SET kind = 'ssh' WHERE authority_id = 'w1'`)
	require.NoError(t, err)

	for range 2 {
		bundles, err := s.ListServerBundles(ctx, now)
		require.NoError(t, err, "a kind this version does not know fails no list")
		require.Len(t, bundles, 2)
		require.Len(t, bundles[0].Authorities, 1)
		assert.Equal(t, "k1", bundles[0].Authorities[0].ID)
		require.Len(t, bundles[1].Authorities, 1, "only the known kind of the later server is listed")
		assert.Equal(t, registry.AuthorityJWT, bundles[1].Authorities[0].Kind)
		assert.Equal(t, "k2", bundles[1].Authorities[0].ID)

		marks, err := s.ListAuthorityMarks(ctx, now)
		require.NoError(t, err)
		require.Len(t, marks, 1)
		assert.Equal(t, "k1", marks[0].AuthorityID)
	}
	assert.Equal(t, uint64(6), s.SkippedAuthorities(), "three rows skipped at each of two rounds")
	assert.Equal(t, 1, strings.Count(logs.String(), "kind=ssh"), "each unknown kind is logged once")
	assert.Equal(t, 1, strings.Count(logs.String(), "kind=x509-next"))

	// Only every authority of a share gone: none, as for a share without.
	_, err = db.Exec(`UPDATE registry_server_bundles SET authorities = `+placeholder+` WHERE server_id = 's2'`,
		`[{"kind":"ssh","id":"s1","state":"old","not_after_us":`+itoa(us)+`}]`)
	require.NoError(t, err)
	bundles, err := s.ListServerBundles(ctx, now)
	require.NoError(t, err)
	assert.Nil(t, bundles[1].Authorities)

	// A kind that is no name at all is corruption, not a later version's.
	for _, kind := range []string{"", "SSH", "a kind", strings.Repeat("k", 33)} {
		_, err = db.Exec(`UPDATE registry_server_bundles SET authorities = `+placeholder+` WHERE server_id = 's2'`,
			`[{"kind":"`+kind+`","id":"s1","state":"old","not_after_us":`+itoa(us)+`}]`)
		require.NoError(t, err)
		_, err = s.ListServerBundles(ctx, now)
		require.ErrorContains(t, err, "sqlstore: decoding stored server bundle", kind)
		_, err = db.Exec(`UPDATE registry_authority_marks SET kind = `+placeholder+` WHERE authority_id = 'w1'`, kind)
		require.NoError(t, err)
		_, err = s.ListAuthorityMarks(ctx, now)
		require.ErrorContains(t, err, "sqlstore: decoding stored authority mark", kind)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
