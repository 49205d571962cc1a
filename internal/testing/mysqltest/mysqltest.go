// Package mysqltest gives tests a real MariaDB (MySQL) database.
//
// A test package calls [Main] from TestMain (or [Stop] after its tests, if
// its TestMain does more), and each test calls [New] for a fresh, empty
// database of its own:
//
//	func TestMain(m *testing.M) { mysqltest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		dsn := mysqltest.New(t) // dropped when the test ends
//		...
//	}
//
// The DSN is github.com/go-sql-driver/mysql's form
// (user:password@unix(/path/mysqld.sock)/database).
//
// If $SPIFFEKIT_TEST_MYSQL_DSN is set, the databases are created on that
// server (the DSN must name a user allowed to create databases).
// Otherwise the first call of New starts a throwaway MariaDB server from
// Debian's mariadb-server package (mariadb-install-db, then mariadbd),
// with its data directory and unix socket in a temporary directory and no
// TCP port, and [Stop] stops it and removes the directory. A package whose
// tests never call New starts nothing. When no mariadbd is installed, New
// skips the test, saying so, unless $SPIFFEKIT_TEST_REQUIRE names mariadb
// (CI sets it): then it fails.
//
// A test that stops or restarts the database starts a server of its own
// with [NewServer], so that the package's other tests are not disturbed.
package mysqltest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/spiffekit/spiffekit/internal/testing/component"
)

const (
	// EnvDSN names the environment variable with the DSN of an existing
	// server.
	EnvDSN = "SPIFFEKIT_TEST_MYSQL_DSN"
	// Component is MariaDB's name in $SPIFFEKIT_TEST_REQUIRE (see package
	// internal/testing/component): a test that cannot start MariaDB fails
	// instead of skipping when it is named there.
	Component = "mariadb"
)

// unavailable skips t, saying why MariaDB cannot run here, or fails it if
// the run requires MariaDB.
func unavailable(t testing.TB, why string) {
	t.Helper()
	component.Unavailable(t, Component, why)
}

// shared is the server the package's databases live on, started by the
// first New.
var shared struct {
	mu sync.Mutex
	// admin is the DSN of the server, without a database, once known.
	admin string
	// srv is the server New started, if any; err why it could not.
	srv *Server
	err error
}

// Main runs the package's tests, stops the server New started, if any, and
// exits.
func Main(m *testing.M) {
	code := m.Run()
	os.Exit(stopAfter(code, os.Stderr))
}

// stopAfter stops the server New started, if any, and returns the exit
// code of tests that returned code: 1 if stopping failed, reported to w.
func stopAfter(code int, w io.Writer) int {
	if err := Stop(); err != nil {
		fmt.Fprintln(w, "mysqltest:", err)
		return 1
	}
	return code
}

// Stop stops the server New started, if any, and removes its directory.
// Call it once the package's tests have run.
func Stop() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil {
		return nil
	}
	err := shared.srv.stop()
	if rmErr := os.RemoveAll(shared.srv.dir); err == nil {
		err = rmErr
	}
	shared.srv, shared.admin, shared.err = nil, "", nil
	return err
}

// adminDSN returns the DSN of the shared server, starting it on first use.
func adminDSN(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.admin != "" {
		return shared.admin
	}
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		shared.admin = dsn
		return dsn
	}
	if shared.err == nil {
		shared.srv, shared.err = startTemp()
	}
	if shared.err != nil {
		var missing *missingError
		if errors.As(shared.err, &missing) {
			unavailable(t, missing.Error())
		} else {
			t.Fatalf("mysqltest: %v", shared.err)
		}
		return ""
	}
	shared.admin = shared.srv.DSN()
	return shared.admin
}

// startTemp starts a server in a new temporary directory.
func startTemp() (*Server, error) {
	bins, err := findBinaries()
	if err != nil {
		return nil, err
	}
	// The socket's path must fit in 107 bytes: a short directory.
	dir, err := os.MkdirTemp("", "mysqltest")
	if err != nil {
		return nil, err
	}
	s := &Server{bins: bins, dir: dir}
	if err := s.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// New creates an empty database for the test, drops it when the test ends,
// and returns its DSN. It skips the test if no server can be had, or
// fails it if one is required (see the package documentation).
func New(t testing.TB) string {
	t.Helper()
	admin := adminDSN(t)
	if admin == "" {
		return "" // t was skipped or failed
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "spiffekit_test_" + hex.EncodeToString(b[:])
	if err := execSQL(t.Context(), admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("mysqltest: creating database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execSQL(ctx, admin, "DROP DATABASE "+name); err != nil {
			t.Errorf("mysqltest: dropping database: %v", err)
		}
	})
	dsn, err := WithDatabase(admin, name)
	if err != nil {
		t.Fatalf("mysqltest: %v", err)
	}
	return dsn
}

// WithDatabase returns dsn with its database replaced by name.
func WithDatabase(dsn, name string) (string, error) {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parsing DSN: %w", err)
	}
	c.DBName = name
	return c.FormatDSN(), nil
}

// execSQL runs one statement on the server of dsn.
func execSQL(ctx context.Context, dsn, stmt string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, stmt)
	return err
}
