package progtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

// TestEnv runs a server and an agent through every method of Env, and a
// workload fetching from the agent.
func TestEnv(t *testing.T) {
	e := NewEnv(t, "-x509-svid-ttl", "1m")
	srv := e.StartServer()
	assert.True(t, srv.Ready())
	assert.Equal(t, "spiffe-server", srv.Name())
	bundle, err := os.ReadFile(e.BundleFile)
	require.NoError(t, err)
	assert.Contains(t, string(bundle), "BEGIN CERTIFICATE")

	// The agent runs under a wrapping command line, and keeps its name.
	e.AgentWrap = []string{"sh", "-c", `echo wrapped; exec "$0" "$@"`}
	agent := e.StartAgent(e.Token())
	assert.Equal(t, "spiffe-agent", agent.Name())
	id := e.AgentID()
	assert.True(t, strings.HasPrefix(agent.Output(), "wrapped\n"), agent.Output())
	assert.True(t, strings.HasPrefix(id, "spiffe://example.org/spiffekit/agent/join_token/"), id)
	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	assert.Contains(t, e.WaitAttested(id, srv, agent), "join_token:", "the agent's selectors")
	e.WaitSVID(e.APISock, "spiffe://example.org/web", srv, agent)
	out, code := e.Fetch()
	assert.Zero(t, code)
	assert.Contains(t, out, "spiffe://example.org/web")
	assert.True(t, Exists(e.APISock))
	assert.False(t, Exists(filepath.Join(e.Dir, "nothing")))

	count, stop := e.Load()
	WaitFor(t, "three fetches", func() bool { return count() >= 3 })
	total, failed := stop()
	assert.GreaterOrEqual(t, total, int64(3))
	assert.Zero(t, failed)

	// SIGTERM: a graceful exit; a second Stop finds it done.
	assert.Equal(t, 0, agent.Stop(t, syscall.SIGTERM), agent.Output())
	assert.Equal(t, 0, agent.Stop(t, syscall.SIGTERM))
	<-agent.Done()
	assert.NoError(t, agent.Err())
	count, stop = e.Load()
	WaitFor(t, "a failed fetch", func() bool { return count() >= 1 })
	total, failed = stop()
	assert.Equal(t, total, failed, "no agent answers")
	assert.Equal(t, -1, srv.Stop(t, syscall.SIGKILL))
}

// TestWriteConfig writes a configuration that only its owner reads.
func TestWriteConfig(t *testing.T) {
	path := WriteConfig(t, t.TempDir(), map[string]any{"node_attestors": map[string]any{"join_token": map[string]any{}}})
	assert.Equal(t, "server.json", filepath.Base(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.JSONEq(t, `{"node_attestors":{"join_token":{}}}`, string(b))
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}

func TestRun(t *testing.T) {
	out, errOut, code := Run(t, nil, "sh", "-c", "echo out; echo err >&2; exit 3")
	assert.Equal(t, "out\n", out)
	assert.Equal(t, "err\n", errOut)
	assert.Equal(t, 3, code)
	out, _, code = RunInput(t, nil, []byte("in"), "cat")
	assert.Equal(t, "in", out)
	assert.Zero(t, code)
	assert.Equal(t, "yes\n", Must(t, "echo", "yes"))
	if os.Getuid() == 0 {
		out, _, code = Run(t, &syscall.Credential{Uid: 65534, Gid: 65534}, "id", "-u")
		assert.Zero(t, code)
		assert.Equal(t, "65534\n", out)
	} else {
		t.Log("not root: running a command as another user needs root; it runs in CI")
	}
}

// recorder is a testing.TB whose Fatal ends the goroutine it runs on,
// keeping the message, so that a test can see a helper fail.
type recorder struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatal(args ...any) {
	r.mu.Lock()
	r.fatal = strings.TrimSuffix(fmt.Sprintln(args...), "\n")
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }

// fails runs f with a recorder and returns what it failed with, or "".
func fails(t *testing.T, f func(tb testing.TB)) string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { defer close(done); f(r) }()
	<-done
	return r.fatal
}

func TestFailures(t *testing.T) {
	msg := fails(t, func(tb testing.TB) { Must(tb, "sh", "-c", "echo nope >&2; exit 1") })
	assert.Contains(t, msg, "exit code 1")
	assert.Contains(t, msg, "nope")

	msg = fails(t, func(tb testing.TB) { Run(tb, nil, filepath.Join(t.TempDir(), "missing")) })
	assert.Contains(t, msg, "missing")

	// A process WaitFor waits on exits: the wait fails at once.
	p := Start(t, "sh", "-c", "exit 4")
	msg = fails(t, func(tb testing.TB) { WaitFor(tb, "the impossible", func() bool { return false }, p) })
	assert.Contains(t, msg, "waiting for the impossible: sh exited (exit status 4)")

	// A wait that never holds fails after its own timeout, saying what
	// the last command answered.
	msg = fails(t, func(tb testing.TB) {
		WaitWithin(tb, 100*time.Millisecond, "the impossible", func() bool {
			Run(tb, nil, "sh", "-c", "echo last")
			return false
		})
	})
	assert.Contains(t, msg, "waiting for the impossible: still not so after 100ms")
	assert.Contains(t, msg, "stdout: last")
}
