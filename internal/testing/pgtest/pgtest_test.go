package pgtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func TestNew(t *testing.T) {
	dsn := New(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	var name string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name))
	assert.Contains(t, dsn, name)
	assert.Regexp(t, `^spiffekit_test_[0-9a-f]{16}$`, name)
}

func TestWithDatabase(t *testing.T) {
	assert.Equal(t, "postgres://u@h:5/db2?sslmode=disable", withDatabase("postgres://u@h:5/db?sslmode=disable", "db2"))
	assert.Equal(t, "host=/tmp dbname=postgres dbname=db2", withDatabase("host=/tmp dbname=postgres", "db2"))
}

// fakeBin writes shell scripts named like the PostgreSQL tools, each exiting
// with the given status, into a directory anyone can read.
func fakeBin(t *testing.T, status map[string]int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgbin")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	for name, code := range status {
		script := fmt.Sprintf("#!/bin/sh\necho %s says no >&2\nexit %d\n", name, code)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755))
	}
	return dir
}

func TestStartFailures(t *testing.T) {
	_, _, err := start(fakeBin(t, map[string]int{"initdb": 1, "pg_ctl": 0}))
	require.ErrorContains(t, err, "initdb")
	require.ErrorContains(t, err, "initdb says no")

	_, _, err = start(fakeBin(t, map[string]int{"initdb": 0, "pg_ctl": 1}))
	require.ErrorContains(t, err, "pg_ctl start")
	require.ErrorContains(t, err, "pg_ctl says no")
}

func TestStopFailure(t *testing.T) {
	bin := fakeBin(t, map[string]int{"initdb": 0, "pg_ctl": 0})
	stop, dsn, err := start(bin)
	require.NoError(t, err)
	assert.Contains(t, dsn, "dbname=postgres")
	// The server "stops" only if pg_ctl says so.
	require.NoError(t, os.WriteFile(filepath.Join(bin, "pg_ctl"), []byte("#!/bin/sh\necho cannot stop >&2\nexit 1\n"), 0o755))
	require.ErrorContains(t, stop(), "cannot stop")
}

func TestNewSkipsWithoutServer(t *testing.T) {
	savedAdmin, savedSkip := admin, skip
	t.Cleanup(func() { admin, skip = savedAdmin, savedSkip })
	admin, skip = "", "no server here"

	skipped := false
	t.Run("skips", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		New(t)
	})
	assert.True(t, skipped, "New must skip, with the reason, when no server is available")
}

func TestFindBinaries(t *testing.T) {
	root := t.TempDir()
	for _, v := range []string{"9", "15", "16"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, v, "bin"), 0o755))
	}
	// 16 has no pg_ctl: the newest complete version wins, compared as numbers.
	for _, v := range []string{"9", "15"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, v, "bin", "pg_ctl"), nil, 0o755))
	}
	bin, ok := findBinaries(filepath.Join(root, "*", "bin"))
	require.True(t, ok)
	assert.Equal(t, filepath.Join(root, "15", "bin"), bin)

	_, ok = findBinaries(filepath.Join(root, "none", "*", "bin"))
	assert.False(t, ok)
}

func TestSetup(t *testing.T) {
	savedAdmin, savedSkip := admin, skip
	t.Cleanup(func() { admin, skip = savedAdmin, savedSkip })

	admin, skip = "", ""
	stop, err := setup("host=/somewhere dbname=postgres", "/unused")
	require.NoError(t, err)
	require.NoError(t, stop())
	assert.Equal(t, "host=/somewhere dbname=postgres", admin, "an explicit DSN is used as is")

	admin, skip = "", ""
	stop, err = setup("", filepath.Join(t.TempDir(), "*", "bin"))
	require.NoError(t, err)
	require.NoError(t, stop())
	assert.Empty(t, admin)
	assert.Contains(t, skip, "no PostgreSQL binaries")
	assert.Contains(t, skip, EnvDSN)

	admin, skip = "", ""
	root := t.TempDir()
	bin := fakeBin(t, map[string]int{"initdb": 1, "pg_ctl": 0})
	require.NoError(t, os.MkdirAll(filepath.Join(root, "15"), 0o755))
	require.NoError(t, os.Symlink(bin, filepath.Join(root, "15", "bin")))
	_, err = setup("", filepath.Join(root, "*", "bin"))
	require.ErrorContains(t, err, "initdb")
}

func TestExitCode(t *testing.T) {
	var out strings.Builder
	assert.Equal(t, 3, exitCode(&out)(3, nil))
	assert.Empty(t, out.String())
	assert.Equal(t, 1, exitCode(&out)(0, errors.New("server would not start")))
	assert.Equal(t, "pgtest: server would not start\n", out.String())
}

// TestServer runs a server of the test's own: its data survive a restart
// and a stop and start; while it is stopped, nobody connects.
func TestServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "pgsrv")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv := NewServer(t, dir)
	exec := func(sql string) error {
		conn, err := pgx.Connect(t.Context(), srv.DSN())
		if err != nil {
			return err
		}
		defer conn.Close(t.Context())
		_, err = conn.Exec(t.Context(), sql)
		return err
	}
	require.NoError(t, exec("CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)"))
	require.NoError(t, srv.Restart())
	require.NoError(t, exec("INSERT INTO kept SELECT n + 1 FROM kept"))
	require.NoError(t, srv.Ping())
	assert.False(t, srv.Stopped())
	require.NoError(t, srv.Stop())
	require.Error(t, exec("SELECT 1"), "a stopped server")
	require.Error(t, srv.Ping())
	assert.True(t, srv.Stopped())
	require.Error(t, srv.Stop(), "stopping a stopped server")
	require.NoError(t, srv.Start())
	conn, err := pgx.Connect(t.Context(), srv.DSN())
	require.NoError(t, err)
	defer conn.Close(t.Context())
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT count(*) FROM kept").Scan(&n))
	assert.Equal(t, 2, n)
	assert.Contains(t, srv.Log(), "database system is ready to accept connections")
}
