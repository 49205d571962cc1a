package progtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
)

// Timeout bounds every wait of [WaitFor], and each command [Run] runs.
const Timeout = 30 * time.Second

// bins holds the two programs, built once for every test.
var bins struct {
	once          sync.Once
	dir           string
	server, agent string
	err           error
}

// Build compiles spiffe-server and spiffe-agent, once per test binary,
// into a directory every user may read (so that a test can run them as
// another user too), and returns their paths. [Main] removes them.
func Build(t testing.TB) (server, agent string) {
	t.Helper()
	bins.once.Do(func() {
		dir, err := os.MkdirTemp("", "spiffekit-e2e-bin")
		if err != nil {
			bins.err = err
			return
		}
		os.Chmod(dir, 0o755)
		bins.dir = dir
		for _, p := range []struct{ out, pkg string }{
			{"spiffe-server", "github.com/spiffekit/spiffekit/examples/spiffe-server"},
			{"spiffe-agent", "github.com/spiffekit/spiffekit/examples/spiffe-agent"},
		} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(dir, p.out), p.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", p.pkg, err, out)
				return
			}
		}
		bins.server, bins.agent = filepath.Join(dir, "spiffe-server"), filepath.Join(dir, "spiffe-agent")
	})
	require.NoError(t, bins.err)
	return bins.server, bins.agent
}

// Main runs the package's tests with a PostgreSQL server available (see
// pgtest.Run), and a MariaDB server for the tests that ask (see
// mysqltest.New), stops them, removes the programs [Build] built, and
// exits.
func Main(m *testing.M) {
	os.Exit(RunMain(m))
}

// RunMain is Main without the exit: it returns the exit code, for a
// TestMain that has more to stop.
func RunMain(m *testing.M) int {
	code := pgtest.Run(m)
	if err := mysqltest.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "mysqltest:", err)
		code = 1
	}
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	return code
}

// Proc is a started program whose output is kept; it is always stopped
// and reaped when the test ends, and its output logged if the test
// failed.
type Proc struct {
	cmd  *exec.Cmd
	name string
	out  logtest.Buffer
	done chan struct{}
	err  error
}

// Output returns what the process wrote to its stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Ready reports whether the server p runs said it is ready: its admin
// socket then listens. The socket file alone says less: it appears at
// bind, before the socket listens, and a connection in between is
// refused.
func (p *Proc) Ready() bool { return p.out.Contains("server ready") }

// Signal sends sig to the process, which keeps running unless sig ends
// it (SIGHUP to reload a configuration).
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Done returns a channel closed once the process exited and was reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns what waiting for the process returned; it may be read once
// Done is closed.
func (p *Proc) Err() error { return p.err }

// Name returns the base name of the program.
func (p *Proc) Name() string { return p.name }

// Start starts the program name with args; the process is killed (if still
// running) and reaped when the test ends.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return start(t, nil, name, args)
}

// start starts the program name with args, under the command line wrap
// when it is not empty (see Env.ServerWrap). The process keeps the
// program's name.
func start(t testing.TB, wrap []string, name string, args []string) *Proc {
	t.Helper()
	argv := append(append(slices.Clone(wrap), name), args...)
	p := &Proc{cmd: exec.Command(argv[0], argv[1:]...), name: filepath.Base(name), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(t, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %s:\n%s", p.name, p.Output())
		}
	})
	return p
}

// Stop sends sig and waits (bounded) for the process to exit; it returns
// the exit code (-1 for a process a signal ended).
func (p *Proc) Stop(t testing.TB, sig syscall.Signal) int {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 20s of %v", p.name, sig)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// Run runs a command to completion (bounded by [Timeout]), as the user of
// cred if not nil, and returns its stdout, stderr and exit code. What it
// answered is kept for the failure message of a [WaitFor] calling it.
func Run(t testing.TB, cred *syscall.Credential, name string, args ...string) (string, string, int) {
	t.Helper()
	return RunInput(t, cred, nil, name, args...)
}

// RunInput is Run with stdin read from in (nil: no input).
func RunInput(t testing.TB, cred *syscall.Credential, in []byte, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if in != nil {
		cmd.Stdin = bytes.NewReader(in)
	}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	code := cmd.ProcessState.ExitCode()
	what := fmt.Sprintf("%s %s: exit code %d", filepath.Base(name), strings.Join(args, " "), code)
	if ctx.Err() != nil && t.Context().Err() == nil {
		what += fmt.Sprintf(" (killed: still running after %s)", Timeout)
	}
	Note(t, fmt.Sprintf("%s\nstdout: %s\nstderr: %s", what, &stdout, &stderr))
	return stdout.String(), stderr.String(), code
}

// lastRun holds, for each running test, what the last command it ran
// answered, so that a wait that times out says why.
var lastRun sync.Map // testing.TB to string

// Note records what a check of t last saw, for the failure message of the
// [WaitFor] it runs in; [Run] notes every command's answer.
func Note(t testing.TB, what string) { lastRun.Store(t, what) }

// Must runs a command that must succeed and returns its stdout.
func Must(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, _, code := Run(t, nil, name, args...)
	if code != 0 {
		last, _ := lastRun.Load(t)
		t.Fatalf("%s", last)
	}
	return out
}

// FreePort returns a loopback address ("127.0.0.1:port") that was free a
// moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// WaitFor waits (bounded by [Timeout]) until f holds, calling it on the
// test's goroutine. If it never holds, the test fails saying what it
// waited for and what the last command f ran answered (see [Note]); if it
// waits for the processes of procs, the test fails as soon as one of them
// exits.
func WaitFor(t testing.TB, what string, f func() bool, procs ...*Proc) {
	t.Helper()
	WaitWithin(t, Timeout, what, f, procs...)
}

// WaitWithin is [WaitFor] bounded by timeout instead of [Timeout], for a
// wait that may outlast it by design (a network partition healing).
func WaitWithin(t testing.TB, timeout time.Duration, what string, f func() bool, procs ...*Proc) {
	t.Helper()
	lastRun.Delete(t)
	defer lastRun.Delete(t)
	deadline := time.Now().Add(timeout)
	for !f() {
		for _, p := range procs {
			select {
			case <-p.done:
				t.Fatalf("waiting for %s: %s exited (%v)", what, p.name, p.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("waiting for %s: still not so after %s", what, timeout)
			if last, ok := lastRun.Load(t); ok {
				msg += "; the last command ran: " + last.(string)
			}
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Exists reports whether a file exists at path.
func Exists(path string) bool { _, err := os.Stat(path); return err == nil }

// ShortTemp returns a new directory with a short path (unix socket paths
// are limited to 108 bytes) that every user may traverse, removed when
// the test ends.
func ShortTemp(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "e2e")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
