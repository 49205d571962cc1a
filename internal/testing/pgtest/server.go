package pgtest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server of one test's own, for a test that
// restarts it, stops it or fills its disk: the databases of [New] live on
// a server that the package's tests share, which no test may disturb.
type Server struct {
	c *cluster
}

// NewServer initializes and starts a server whose files (the data
// directory, the unix socket and the log) live in dir, which must exist
// and be empty (a small file system the test mounted, for example), and
// stops it when the test ends. As root, it gives dir to the postgres user.
// It skips the test when no PostgreSQL binaries are installed.
func NewServer(t testing.TB, dir string) *Server {
	t.Helper()
	bin, ok := findBinaries(binaries)
	if !ok {
		t.Skip("pgtest: no PostgreSQL binaries under " + binaries)
	}
	c, err := newCluster(bin, dir)
	if err == nil {
		err = c.init()
	}
	if err == nil {
		err = c.start()
	}
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { _ = c.stop("immediate") }) // it may be down already
	return &Server{c: c}
}

// DSN returns the DSN of the server's database "postgres".
func (s *Server) DSN() string { return s.c.dsn() }

// Restart stops the server (fast: open connections are cut, transactions
// in flight roll back) and starts it again, waiting until it accepts
// connections, as pg_ctl restart does.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// Stop stops the server (fast shutdown) and waits until it is down.
func (s *Server) Stop() error { return s.c.stop("fast") }

// Start starts the stopped server and waits until it accepts connections.
func (s *Server) Start() error { return s.c.start() }

// Log returns what the server wrote to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.c.logFile())
	return string(b)
}

// Ping connects to the server and pings it, within five seconds.
func (s *Server) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.c.dsn())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.Ping(ctx)
}

// Stopped reports whether the server is not running: stopped, or stopped
// by itself (PostgreSQL shuts down when it cannot write its WAL).
func (s *Server) Stopped() bool {
	// pg_ctl status exits with 3 when no server runs in the data directory.
	err := s.c.command("pg_ctl", "-D", s.c.data(), "status").Run()
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == 3
}
