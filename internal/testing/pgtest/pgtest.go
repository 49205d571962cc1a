// Package pgtest gives tests a real PostgreSQL database.
//
// A test package calls [Main] from TestMain, and each test calls [New] for a
// fresh, empty database of its own:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := pgtest.New(t) // dropped when the test ends
//		...
//	}
//
// If $SPIFFEKIT_TEST_POSTGRES_DSN is set, the databases are created on that
// server (the DSN must name a role allowed to create databases). Otherwise
// Main starts a throwaway server from the PostgreSQL binaries installed under
// /usr/lib/postgresql/*/bin (as Debian's postgresql package installs them),
// listening on a unix socket in a temporary directory only, and stops it when
// the tests end. When running as root it runs the server as the "postgres"
// user, because PostgreSQL refuses to run as root. New skips the test only
// when no PostgreSQL binaries are installed.
//
// A test that restarts, stops or starves PostgreSQL starts a server of its
// own with [NewServer], in a directory it chooses (a small tmpfs, to fill
// its disk), so that the package's other tests are not disturbed:
//
//	srv := pgtest.NewServer(t, dir) // stopped when the test ends
//	... srv.DSN() ...
//	require.NoError(t, srv.Restart())
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvDSN names the environment variable with the DSN of an existing server.
const EnvDSN = "SPIFFEKIT_TEST_POSTGRES_DSN"

// binaries matches the directories of the PostgreSQL binaries, one per
// major version, as Debian's postgresql package installs them.
const binaries = "/usr/lib/postgresql/*/bin"

// admin is the DSN of the server's administrative database, or empty;
// skip says why there is no server. Main sets them before any test runs
// and tests only read them.
var admin, skip string

// Main provides a server for the package's tests, runs them, stops the
// server and exits.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit: it runs the tests with a database server
// available and returns the exit code, for a TestMain that has more to
// clean up.
func Run(m *testing.M) int {
	return exitCode(os.Stderr)(run(m))
}

// exitCode returns the process exit code for the result of run, reporting an
// error to w.
func exitCode(w io.Writer) func(int, error) int {
	return func(code int, err error) int {
		if err != nil {
			fmt.Fprintln(w, "pgtest:", err)
			return 1
		}
		return code
	}
}

func run(m *testing.M) (int, error) {
	stop, err := setup(os.Getenv(EnvDSN), binaries)
	if err != nil {
		return 1, err
	}
	code := m.Run()
	if err := stop(); err != nil {
		return 1, err
	}
	return code, nil
}

// setup points the package at a server: the one named by dsn if it is not
// empty, else a new one started from the newest binaries matching glob. With
// neither, it records why tests must skip. stop stops what setup started.
func setup(dsn, glob string) (stop func() error, err error) {
	noop := func() error { return nil }
	if dsn != "" {
		admin = dsn
		return noop, nil
	}
	bin, ok := findBinaries(glob)
	if !ok {
		skip = "no PostgreSQL binaries under " + glob + "; install PostgreSQL or set " + EnvDSN
		return noop, nil
	}
	stop, dsn, err = start(bin)
	if err != nil {
		return nil, err
	}
	admin = dsn
	return stop, nil
}

// findBinaries returns the newest directory matching glob (one per major
// version, e.g. /usr/lib/postgresql/15/bin) that holds pg_ctl.
func findBinaries(glob string) (string, bool) {
	dirs, _ := filepath.Glob(glob)
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return va - vb
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], true
		}
	}
	return "", false
}

// start initializes and starts a server in a new temporary directory.
func start(bin string) (stop func() error, dsn string, err error) {
	dir, err := os.MkdirTemp("", "pgtest")
	if err != nil {
		return nil, "", err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	c, err := newCluster(bin, dir)
	if err == nil {
		err = c.init()
	}
	if err == nil {
		err = c.start()
	}
	if err != nil {
		cleanup()
		return nil, "", err
	}
	stop = func() error {
		err := c.stop("immediate")
		cleanup()
		return err
	}
	return stop, c.dsn(), nil
}

// New creates an empty database for the test, drops it when the test ends,
// and returns its DSN. It skips the test if no server is available.
func New(t testing.TB) string {
	t.Helper()
	if admin == "" {
		if skip == "" {
			t.Fatal("pgtest: call pgtest.Main from TestMain")
		}
		t.Skip("pgtest: " + skip)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "spiffekit_test_" + hex.EncodeToString(b[:])
	exec := func(ctx context.Context, sql string) error {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database: %v", err)
		}
	})
	return withDatabase(admin, name)
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		if u, err := url.Parse(dsn); err == nil {
			u.Path = "/" + name
			return u.String()
		}
	}
	// In the keyword/value form, a later keyword overrides an earlier one.
	return dsn + " dbname=" + name
}
