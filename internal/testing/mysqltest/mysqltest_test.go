package mysqltest

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/component"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

func TestMain(m *testing.M) { Main(m) }

func TestNew(t *testing.T) {
	adminDSN(t) // the shared server, and its goroutine, may start here
	defer leaktest.Check(t)()
	dsn := New(t)
	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	defer db.Close()
	var name string
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT DATABASE()").Scan(&name))
	assert.Regexp(t, `^spiffekit_test_[0-9a-f]{16}$`, name)
	c, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	assert.Equal(t, name, c.DBName)
	var tables int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&tables))
	assert.Zero(t, tables, "a new database is empty")

	// Another test's database is another database.
	other := New(t)
	assert.NotEqual(t, dsn, other)
}

// TestDropped checks that a test's database is gone once the test ends.
func TestDropped(t *testing.T) {
	var name string
	t.Run("test", func(t *testing.T) {
		c, err := mysql.ParseDSN(New(t))
		require.NoError(t, err)
		name = c.DBName
	})
	db, err := sql.Open("mysql", adminDSN(t))
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n))
	assert.Zero(t, n, "database %s dropped", name)
}

func TestWithDatabase(t *testing.T) {
	dsn, err := WithDatabase("u:p@tcp(h:3306)/a?tls=true", "b")
	require.NoError(t, err)
	assert.Equal(t, "u:p@tcp(h:3306)/b?tls=true", dsn)
	_, err = WithDatabase("u@tcp(h:3306", "b")
	require.ErrorContains(t, err, "parsing DSN")
}

// TestServer restarts a server of the test's own: the data survives, and
// the server answers again.
func TestServer(t *testing.T) {
	s := NewServer(t, t.TempDir())
	dsn, err := WithDatabase(s.DSN(), "kept")
	require.NoError(t, err)
	require.NoError(t, execSQL(t.Context(), s.DSN(), "CREATE DATABASE kept"))
	require.NoError(t, execSQL(t.Context(), dsn, "CREATE TABLE t (x INT)"))
	require.NoError(t, execSQL(t.Context(), dsn, "INSERT INTO t VALUES (7)"))

	require.NoError(t, s.Stop())
	require.Error(t, s.Ping(), "a stopped server does not answer")
	require.NoError(t, s.Stop(), "stopping a stopped server")
	require.NoError(t, s.Restart())
	require.ErrorContains(t, s.Start(), "the server is running")

	db, err := sql.Open("mysql", dsn)
	require.NoError(t, err)
	defer db.Close()
	var x int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT x FROM t").Scan(&x))
	assert.Equal(t, 7, x)
	assert.Contains(t, s.Log(), "ready for connections")
}

// TestStartFailure checks that a server that cannot start says why: here
// its data directory was never initialized.
func TestStartFailure(t *testing.T) {
	bins, err := findBinaries()
	if err != nil {
		unavailable(t, err.Error())
	}
	s := &Server{bins: bins, dir: t.TempDir()}
	err = s.Start()
	require.ErrorContains(t, err, "mariadbd exited")
}

// TestInitFailure checks that a data directory that cannot be made is
// reported with the tool's output.
func TestInitFailure(t *testing.T) {
	bins, err := findBinaries()
	if err != nil {
		unavailable(t, err.Error())
	}
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	s := &Server{bins: bins, dir: file}
	require.ErrorContains(t, s.init(), "mariadb-install-db")
}

func TestMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	saved := searchPath
	searchPath = []string{t.TempDir()}
	defer func() { searchPath = saved }()
	_, err := findBinaries()
	var missing *missingError
	require.ErrorAs(t, err, &missing)
	assert.Equal(t, "mariadb-install-db is not installed (apt-get install --no-install-recommends mariadb-server), or set "+EnvDSN, err.Error())
	_, err = startTemp()
	require.ErrorAs(t, err, &missing)
}

// recorder is a testing.TB that records how a test would have ended.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Skipf(format string, args ...any)  { r.skipped = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestUnavailable(t *testing.T) {
	t.Setenv(component.EnvRequire, "docker,mariadb")
	r := &recorder{TB: t}
	unavailable(r, "no mariadbd")
	assert.Equal(t, "mariadb is required ($SPIFFEKIT_TEST_REQUIRE) but cannot run here: no mariadbd", r.failed)
	assert.Empty(t, r.skipped)

	t.Setenv(component.EnvRequire, "docker")
	r = &recorder{TB: t}
	unavailable(r, "no mariadbd")
	assert.Equal(t, "mariadb cannot run here: no mariadbd", r.skipped)
	assert.Empty(t, r.failed)
}

// TestSharedRestarts stops the shared server, as Main does after the
// tests, and checks that the next New starts another, and that Stop with
// none running does nothing.
func TestSharedRestarts(t *testing.T) {
	first := adminDSN(t)
	var buf bytes.Buffer
	require.Equal(t, 3, stopAfter(3, &buf), "the tests' exit code")
	assert.Empty(t, buf.String())
	require.NoError(t, Stop(), "with no server")
	dsn := New(t)
	assert.NotEqual(t, first, adminDSN(t), "a new server, in a new directory")
	require.NoError(t, execSQL(t.Context(), dsn, "CREATE TABLE t (x INT)"))
}

// TestEnvDSN points the package at a server of the test's own, as
// $SPIFFEKIT_TEST_MYSQL_DSN does, and checks that New creates its
// databases there.
func TestEnvDSN(t *testing.T) {
	srv := NewServer(t, t.TempDir())
	shared.mu.Lock()
	saved := shared.admin
	shared.admin = ""
	shared.mu.Unlock()
	defer func() {
		shared.mu.Lock()
		shared.admin = saved
		shared.mu.Unlock()
	}()
	t.Setenv(EnvDSN, srv.DSN())
	dsn := New(t)
	c, err := mysql.ParseDSN(dsn)
	require.NoError(t, err)
	assert.Equal(t, c.Addr, filepath.Join(srv.dir, "mysqld.sock"), "on the server of the variable")
	require.NoError(t, execSQL(t.Context(), dsn, "CREATE TABLE t (x INT)"))
}

// TestNoServer checks how New and NewServer end a test when MariaDB is
// missing (skipped, or failed where required) or fails to start.
func TestNoServer(t *testing.T) {
	require.NoError(t, Stop())
	t.Setenv(EnvDSN, "")
	t.Setenv(component.EnvRequire, "")
	t.Setenv("PATH", t.TempDir())
	saved := searchPath
	searchPath = []string{t.TempDir()}
	defer func() {
		searchPath = saved
		require.NoError(t, Stop()) // forget the failure for the next tests
	}()

	r := &recorder{TB: t}
	assert.Empty(t, New(r))
	assert.Contains(t, r.skipped, "mariadb-install-db is not installed")
	r = &recorder{TB: t}
	assert.Nil(t, NewServer(r, t.TempDir()))
	assert.Contains(t, r.skipped, "mariadb-install-db is not installed")

	t.Setenv(component.EnvRequire, Component)
	r = &recorder{TB: t}
	assert.Empty(t, New(r))
	assert.Contains(t, r.failed, "mariadb is required")

	shared.mu.Lock()
	shared.err = errors.New("no room")
	shared.mu.Unlock()
	r = &recorder{TB: t}
	assert.Empty(t, New(r))
	assert.Equal(t, "mysqltest: no room", r.failed)
}

// TestNewServerFailures checks that NewServer fails a test whose server
// cannot be made or started.
func TestNewServerFailures(t *testing.T) {
	if _, err := findBinaries(); err != nil {
		unavailable(t, err.Error())
	}
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	r := &recorder{TB: t}
	assert.Nil(t, NewServer(r, file))
	assert.Contains(t, r.failed, "mariadb-install-db")
}
