package pgtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
)

// cluster is a PostgreSQL server's files in a directory, and the tools
// that run it.
type cluster struct {
	bin, dir string
	// prefix runs the tools as the postgres user when the tests run as
	// root: PostgreSQL refuses to run as root.
	prefix []string
}

// newCluster prepares dir for a server run from the binaries in bin; as
// root, it gives dir to the postgres user.
func newCluster(bin, dir string) (*cluster, error) {
	c := &cluster{bin: bin, dir: dir}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, err
		}
		c.prefix = []string{"runuser", "-u", "postgres", "--"}
	}
	return c, nil
}

func (c *cluster) command(name string, args ...string) *exec.Cmd {
	argv := append(slices.Clone(c.prefix), filepath.Join(c.bin, name))
	argv = append(argv, args...)
	return exec.Command(argv[0], argv[1:]...)
}

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *cluster) logFile() string { return filepath.Join(c.dir, "log") }

// init creates the data directory.
func (c *cluster) init() error {
	if out, err := c.command("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// start starts the server and waits until it accepts connections. It
// listens on a unix socket in dir only: no TCP port to collide with.
func (c *cluster) start() error {
	opts := fmt.Sprintf("-k %s -c listen_addresses= -F", c.dir)
	if out, err := c.command("pg_ctl", "-D", c.data(), "-o", opts, "-l", c.logFile(), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(c.logFile())
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// stop stops the server in the given shutdown mode (smart, fast,
// immediate) and waits until it is down.
func (c *cluster) stop(mode string) error {
	if out, err := c.command("pg_ctl", "-D", c.data(), "-m", mode, "-w", "stop").CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// dsn is the DSN of the server's postgres database.
func (c *cluster) dsn() string {
	return fmt.Sprintf("host=%s user=postgres dbname=postgres sslmode=disable", c.dir)
}
