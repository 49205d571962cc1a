package mysqltest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// startTimeout bounds mariadb-install-db, and a server's start and stop.
const startTimeout = 60 * time.Second

// binaries are the programs of Debian's mariadb-server package.
type binaries struct {
	installDB, server string
}

// missingError says that MariaDB is not installed.
type missingError struct{ what string }

func (e *missingError) Error() string {
	return e.what + " is not installed (apt-get install --no-install-recommends mariadb-server), or set " + EnvDSN
}

// searchPath is where findBinaries looks besides $PATH: Debian puts
// mariadbd in /usr/sbin, which is not on every user's $PATH.
var searchPath = []string{"/usr/sbin", "/usr/bin"}

// findBinaries finds mariadb-install-db and mariadbd.
func findBinaries() (binaries, error) {
	find := func(name string) (string, error) {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range searchPath {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
		return "", &missingError{name}
	}
	var b binaries
	var err error
	if b.installDB, err = find("mariadb-install-db"); err != nil {
		return b, err
	}
	if b.server, err = find("mariadbd"); err != nil {
		return b, err
	}
	return b, nil
}

// Server is a MariaDB server whose files (data directory, unix socket, pid
// file and log) live in one directory. It listens on its unix socket only;
// user root has no password.
type Server struct {
	bins binaries
	dir  string
	cmd  *exec.Cmd // nil while stopped
}

// NewServer initializes and starts a server of the test's own in dir,
// which must exist and be empty, and stops it when the test ends. It skips
// the test when MariaDB is not installed, or fails it if MariaDB is
// required (see the package documentation).
func NewServer(t testing.TB, dir string) *Server {
	t.Helper()
	bins, err := findBinaries()
	if err != nil {
		unavailable(t, err.Error())
		return nil
	}
	s := &Server{bins: bins, dir: dir}
	if err := s.init(); err != nil {
		t.Fatalf("mysqltest: %v", err)
		return nil
	}
	if err := s.Start(); err != nil {
		t.Fatalf("mysqltest: %v", err)
		return nil
	}
	t.Cleanup(func() { _ = s.stop() })
	return s
}

func (s *Server) data() string    { return filepath.Join(s.dir, "data") }
func (s *Server) socket() string  { return filepath.Join(s.dir, "mysqld.sock") }
func (s *Server) logFile() string { return filepath.Join(s.dir, "error.log") }

// userArgs makes the server run as root when the tests do: mariadbd
// refuses root unless told.
func userArgs() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// init creates the data directory, with a root user that has no password.
func (s *Server) init() error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	args := append([]string{"--no-defaults"}, userArgs()...)
	args = append(args, "--datadir="+s.data(), "--auth-root-authentication-method=normal", "--skip-test-db")
	if out, err := exec.CommandContext(ctx, s.bins.installDB, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("mariadb-install-db: %w\n%s", err, out)
	}
	return nil
}

// Start starts the stopped server and waits until it accepts connections.
// Durability is given up for speed, as the tests' PostgreSQL runs without
// fsync: InnoDB writes its log at commit but never syncs a file, so that a
// server killed keeps its commits and only a machine that crashes loses
// them. Tables live in the system tablespace, so that creating and
// dropping a test's database creates and removes no files.
func (s *Server) Start() error {
	if s.cmd != nil {
		return errors.New("mysqltest: the server is running")
	}
	args := append([]string{"--no-defaults"}, userArgs()...)
	args = append(args,
		"--datadir="+s.data(),
		"--socket="+s.socket(),
		"--skip-networking",
		"--pid-file="+filepath.Join(s.dir, "mariadbd.pid"),
		"--log-error="+s.logFile(),
		"--innodb-buffer-pool-size=32M",
		"--innodb-flush-log-at-trx-commit=2",
		"--max-connections=1000",
		"--innodb-flush-method=nosync",
		"--innodb-doublewrite=0",
		"--innodb-file-per-table=0",
		"--sync-frm=0",
	)
	cmd := exec.Command(s.bins.server, args...)
	// The server dies with the test binary, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting mariadbd: %w", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.Ping()
		if err == nil {
			return nil
		}
		if done, status := s.exited(); done {
			s.cmd = nil
			return fmt.Errorf("mariadbd exited: %s\n%s", status, s.Log())
		}
		if time.Now().After(deadline) {
			_ = s.stop()
			return fmt.Errorf("mariadbd did not accept connections within %s: %v\n%s", startTimeout, err, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// exited reports whether the server's process has ended, and reaps it if
// so, with how it ended. It waits for nothing: the package keeps no
// goroutine running while a server runs, so that the tests' leak checks
// see none.
func (s *Server) exited() (bool, string) {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(s.cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
	switch {
	case err != nil:
		return true, err.Error() // reaped already
	case pid == 0:
		return false, ""
	case ws.Signaled():
		return true, "killed by " + ws.Signal().String()
	default:
		return true, fmt.Sprintf("exit status %d", ws.ExitStatus())
	}
}

// Stop stops the server (SIGTERM: a normal shutdown that rolls back
// transactions in flight and cuts connections) and waits until it is down.
func (s *Server) Stop() error { return s.stop() }

// stop stops the server if it runs: SIGTERM, then SIGKILL if it is not
// down within startTimeout.
func (s *Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd = nil }()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if s.waitExit(startTimeout) {
		return nil
	}
	_ = s.cmd.Process.Kill()
	s.waitExit(startTimeout)
	return fmt.Errorf("mariadbd did not stop within %s; killed", startTimeout)
}

// waitExit waits up to d for the server's process to end.
func (s *Server) waitExit(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if done, _ := s.exited(); done {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Restart stops the server and starts it again.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.Start()
}

// DSN returns the DSN of the server as root, without a database.
func (s *Server) DSN() string {
	c := mysql.NewConfig()
	c.User, c.Net, c.Addr = "root", "unix", s.socket()
	return c.FormatDSN()
}

// Log returns what the server wrote to its error log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.logFile())
	return string(b)
}

// Ping connects to the server and pings it, within five seconds.
func (s *Server) Ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := sql.Open("mysql", s.DSN())
	if err != nil {
		return err
	}
	defer db.Close()
	return db.PingContext(ctx)
}
