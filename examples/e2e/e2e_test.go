package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
)

// bins holds the two programs, built once for every test.
var bins struct {
	once          sync.Once
	dir           string
	server, agent string
	err           error
}

// build compiles spiffe-server and spiffe-agent into a directory every
// user may read, so that a test can run them as another user too.
func build(t *testing.T) (server, agent string) {
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

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// proc is a started program whose output is kept; it is always stopped
// and reaped when the test ends.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// ready reports whether the server p runs said it is ready: its admin
// socket then listens. The socket file alone says less: it appears at
// bind, before the socket listens, and a connection in between is
// refused.
func (p *proc) ready() bool { return strings.Contains(p.output(), "server ready") }

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(t, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("output of %s:\n%s", filepath.Base(name), p.output())
		}
	})
	return p
}

// stop sends sig and waits (bounded) for the process to exit; it returns
// the exit code.
func (p *proc) stop(t *testing.T, sig syscall.Signal) int {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
			t.Errorf("%s did not stop within 20s of %v", p.cmd.Path, sig)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// run runs a command to completion (bounded) and returns its stdout,
// stderr and exit code.
func run(t *testing.T, cred *syscall.Credential, name string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
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
		what += " (killed: still running after 30s)"
	}
	lastRun.Store(t, fmt.Sprintf("%s\nstdout: %s\nstderr: %s", what, &stdout, &stderr))
	return stdout.String(), stderr.String(), code
}

// lastRun holds, for each running test, what the last command it ran
// answered, so that a wait that times out says why.
var lastRun sync.Map // *testing.T to string

// must runs a command that must succeed and returns its stdout.
func must(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, _, code := run(t, nil, name, args...)
	if code != 0 {
		last, _ := lastRun.Load(t)
		t.Fatalf("%s", last)
	}
	return out
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// waitFor waits (bounded) until f holds, calling it on the test's
// goroutine. If it never holds, the test fails saying what it waited for
// and what the last command f ran answered; if it waits for the
// processes of procs, the test fails as soon as one of them exits.
func waitFor(t *testing.T, what string, f func() bool, procs ...*proc) {
	t.Helper()
	lastRun.Delete(t)
	defer lastRun.Delete(t)
	deadline := time.Now().Add(30 * time.Second)
	for !f() {
		for _, p := range procs {
			select {
			case <-p.done:
				t.Fatalf("waiting for %s: %s exited (%v)", what, filepath.Base(p.cmd.Path), p.err)
			default:
			}
		}
		if time.Now().After(deadline) {
			msg := "waiting for " + what + ": still not so after 30s"
			if last, ok := lastRun.Load(t); ok {
				msg += "; the last command ran: " + last.(string)
			}
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// shortTemp returns a directory with a short path (unix socket paths are
// limited to 108 bytes) that every user may traverse.
func shortTemp(t *testing.T) string {
	dir, err := os.MkdirTemp("", "e2e")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

var entryID = regexp.MustCompile(`Entry ID\s*:\s*(\S+)`)

// TestServerAndAgent walks the documented command line: server, token,
// entry, agent, workload fetch, SVID rotation, eviction, and a second
// user.
func TestServerAndAgent(t *testing.T) {
	serverBin, agentBin := build(t)
	dir := shortTemp(t)
	adminSock := filepath.Join(dir, "admin.sock")
	apiSock := filepath.Join(dir, "agent", "api.sock")
	bind := freePort(t)

	srv := startProc(t, serverBin, "run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "server"),
		"-bind", bind, "-admin-socket", adminSock, "-x509-svid-ttl", "6s", "-agent-svid-ttl", "8s", "-ca-ttl", "1h")
	waitFor(t, "the server to be ready", func() bool { return srv.ready() }, srv)

	// The trust bundle an operator hands to agents.
	bundlePEM := must(t, serverBin, "bundle", "show", "-admin-socket", adminSock)
	require.Contains(t, bundlePEM, "BEGIN CERTIFICATE")
	bundleFile := filepath.Join(dir, "bundle.pem")
	require.NoError(t, os.WriteFile(bundleFile, []byte(bundlePEM), 0o644))
	doc := must(t, serverBin, "bundle", "show", "-admin-socket", adminSock, "-format", "spiffe")
	assert.Contains(t, doc, `"keys"`)

	token := strings.TrimSpace(must(t, serverBin, "token", "generate", "-admin-socket", adminSock, "-ttl", "10m"))
	require.NotEmpty(t, token)

	agent := startProc(t, agentBin, "run", "-trust-domain", "example.org", "-server", bind, "-trust-bundle", bundleFile,
		"-join-token", token, "-socket", apiSock, "-data-dir", filepath.Join(dir, "agent-data"))
	waitFor(t, "the agent to attest", func() bool {
		out, _, code := run(t, nil, serverBin, "agent", "list", "-admin-socket", adminSock)
		return code == 0 && strings.Contains(out, "/spiffekit/agent/join_token/")
	}, srv, agent)
	agents := must(t, serverBin, "agent", "list", "-admin-socket", adminSock)
	agentID := regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/join_token/[0-9a-f]+`).FindString(agents)
	require.NotEmpty(t, agentID, agents)

	uid := strconv.Itoa(os.Getuid())
	created := must(t, serverBin, "entry", "create", "-admin-socket", adminSock, "-parent-id", agentID,
		"-spiffe-id", "spiffe://example.org/web", "-selector", "unix:uid:"+uid)
	m := entryID.FindStringSubmatch(created)
	require.NotNil(t, m, created)
	shown := must(t, serverBin, "entry", "show", "-admin-socket", adminSock, "-entry-id", m[1])
	assert.Contains(t, shown, "spiffe://example.org/web")

	// The workload gets its SVID through the agent.
	waitFor(t, "the agent's Workload API socket", func() bool { return exists(apiSock) }, srv, agent)
	var fetched string
	waitFor(t, "the workload's SVID", func() bool {
		out, _, code := run(t, nil, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		fetched = out
		return code == 0 && strings.Contains(out, "spiffe://example.org/web")
	})
	jwt := must(t, agentBin, "api", "fetch", "jwt", "-audience", "db", "-socket", apiSock)
	assert.Contains(t, jwt, "spiffe://example.org/web")
	assert.Regexp(t, `ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`, jwt)
	must(t, agentBin, "healthcheck", "-socket", apiSock)

	// Rotation: the SVID (6 s) is replaced at half its life, and the
	// agent's own SVID (8 s) is renewed; the workload keeps being served.
	serial := serialOf(fetched)
	require.NotEmpty(t, serial, fetched)
	waitFor(t, "a rotated SVID", func() bool {
		out, _, code := run(t, nil, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		return code == 0 && serialOf(out) != "" && serialOf(out) != serial
	})
	waitFor(t, "the agent SVID renewal", func() bool { return strings.Contains(agent.output(), "agent SVID renewed") })

	// A second user: refused by the admin socket, and holds no identity.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	if os.Getuid() == 0 {
		_, errOut, code := run(t, nobody, serverBin, "token", "generate", "-admin-socket", adminSock)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "permission denied")
		require.NoError(t, os.Chmod(filepath.Dir(apiSock), 0o755))
		_, errOut, code = run(t, nobody, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		assert.Equal(t, 1, code)
		assert.Contains(t, strings.ToLower(errOut), "no identity")
	} else {
		t.Log("not root: the second-user checks need root to switch users; they run in CI")
	}

	// Eviction: the agent loses its access; its workload keeps the SVID it
	// holds until it expires.
	must(t, serverBin, "agent", "evict", "-admin-socket", adminSock, "-spiffe-id", agentID)
	waitFor(t, "the evicted agent to be refused", func() bool {
		return strings.Contains(agent.output(), "evicted") || strings.Contains(agent.output(), "refused")
	})
	// A spent join token cannot bring it back.
	out := must(t, serverBin, "agent", "list", "-admin-socket", adminSock)
	assert.NotContains(t, out, agentID)

	// Graceful shutdown: both exit 0 on SIGTERM.
	assert.Equal(t, 0, agent.stop(t, syscall.SIGTERM), agent.output())
	assert.Equal(t, 0, srv.stop(t, syscall.SIGTERM), srv.output())
}

var serialLine = regexp.MustCompile(`(?i)serial(?: number)?\s*:?\s*([0-9a-f:]+)`)

// serialOf finds the serial number of the first SVID in the output of
// "api fetch x509".
func serialOf(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := serialLine.FindStringSubmatch(sc.Text()); m != nil {
			return m[1]
		}
	}
	return ""
}

// env is a server and an agent started from the built programs.
type env struct {
	t                    *testing.T
	serverBin, agentBin  string
	dir, adminSock, bind string
	apiSock, bundleFile  string
	serverArgs           []string
}

func newEnv(t *testing.T, extraServerArgs ...string) *env {
	serverBin, agentBin := build(t)
	dir := shortTemp(t)
	e := &env{t: t, serverBin: serverBin, agentBin: agentBin, dir: dir,
		adminSock: filepath.Join(dir, "admin.sock"), bind: freePort(t),
		apiSock: filepath.Join(dir, "api.sock"), bundleFile: filepath.Join(dir, "bundle.pem")}
	e.serverArgs = append([]string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "server"),
		"-bind", e.bind, "-admin-socket", e.adminSock}, extraServerArgs...)
	return e
}

func (e *env) startServer() *proc {
	os.Remove(e.adminSock)
	p := startProc(e.t, e.serverBin, e.serverArgs...)
	waitFor(e.t, "the server to be ready", func() bool { return p.ready() }, p)
	require.NoError(e.t, os.WriteFile(e.bundleFile, []byte(must(e.t, e.serverBin, "bundle", "show", "-admin-socket", e.adminSock)), 0o644))
	return p
}

func (e *env) token() string {
	return strings.TrimSpace(must(e.t, e.serverBin, "token", "generate", "-admin-socket", e.adminSock))
}

func (e *env) startAgent(token string, servers ...string) *proc {
	if len(servers) == 0 {
		servers = []string{e.bind}
	}
	args := []string{"run", "-trust-domain", "example.org", "-trust-bundle", e.bundleFile,
		"-join-token", token, "-socket", e.apiSock, "-data-dir", filepath.Join(e.dir, "agent-data")}
	for _, s := range servers {
		args = append(args, "-server", s)
	}
	return startProc(e.t, e.agentBin, args...)
}

func (e *env) agentID() string {
	var id string
	waitFor(e.t, "the agent to attest", func() bool {
		out, _, code := run(e.t, nil, e.serverBin, "agent", "list", "-admin-socket", e.adminSock)
		id = regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/join_token/[0-9a-f]+`).FindString(out)
		return code == 0 && id != ""
	})
	return id
}

func (e *env) entry(parent, id string, selector string) {
	must(e.t, e.serverBin, "entry", "create", "-admin-socket", e.adminSock, "-parent-id", parent,
		"-spiffe-id", id, "-selector", selector)
}

func (e *env) fetch() (string, int) {
	out, _, code := run(e.t, nil, e.agentBin, "api", "fetch", "x509", "-socket", e.apiSock)
	return out, code
}

// load fetches SVIDs from the agent in a loop until stop is called;
// count says how many fetches have run so far, stop how many ran and how
// many failed. The output of each failed fetch is logged.
func (e *env) load() (count func() int64, stop func() (total, failed int64)) {
	ctx, cancel := context.WithCancel(context.Background())
	var total, failed atomic.Int64
	var failures []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			start := time.Now()
			cmd := exec.CommandContext(ctx, e.agentBin, "api", "fetch", "x509", "-socket", e.apiSock)
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				return
			}
			total.Add(1)
			if err != nil {
				failed.Add(1)
				failures = append(failures, fmt.Sprintf("fetch %d (%v, after %s): %s", total.Load(), err, time.Since(start).Round(time.Millisecond), out))
			}
		}
	}()
	return total.Load, func() (int64, int64) {
		cancel()
		<-done
		for _, f := range failures {
			e.t.Log(f)
		}
		return total.Load(), failed.Load()
	}
}

// TestServerKilledWhileAgentRuns: the server dies (SIGKILL) and comes back;
// the workload is served throughout and the agent syncs again.
func TestServerKilledWhileAgentRuns(t *testing.T) {
	e := newEnv(t)
	srv := e.startServer()
	e.startAgent(e.token())
	id := e.agentID()
	uid := strconv.Itoa(os.Getuid())
	e.entry(id, "spiffe://example.org/web", "unix:uid:"+uid)
	waitFor(t, "the first SVID", func() bool { out, code := e.fetch(); return code == 0 && strings.Contains(out, "/web") })

	count, stop := e.load()
	srv.stop(t, syscall.SIGKILL)
	time.Sleep(time.Second) // the server stays away for a while
	e.startServer()
	e.entry(id, "spiffe://example.org/db", "unix:gid:"+strconv.Itoa(os.Getgid()))
	waitFor(t, "the agent to sync again", func() bool { out, code := e.fetch(); return code == 0 && strings.Contains(out, "/db") })
	waitFor(t, "50 fetches under load", func() bool { return count() >= 50 })
	total, failed := stop()
	t.Logf("%d fetches while the server was killed and restarted, %d failed", total, failed)
	assert.Positive(t, total)
	assert.Zero(t, failed, "no workload fetch fails while the server is away")
}

// TestAgentRestarted: a restarted agent reuses its saved SVID; its spent
// join token is never accepted again.
func TestAgentRestarted(t *testing.T) {
	e := newEnv(t)
	e.startServer()
	tok := e.token()
	a := e.startAgent(tok)
	id := e.agentID()
	e.entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	waitFor(t, "the first SVID", func() bool { out, code := e.fetch(); return code == 0 && strings.Contains(out, "/web") })
	a.stop(t, syscall.SIGKILL)

	b := e.startAgent(tok)
	waitFor(t, "the restarted agent to serve", func() bool { out, code := e.fetch(); return code == 0 && strings.Contains(out, "/web") })
	assert.Contains(t, b.output(), "reusing the saved agent SVID")
	assert.Equal(t, id, e.agentID(), "same agent, no second attestation")

	// Without its data directory, the spent token is refused.
	_, errOut, code := run(t, nil, e.agentBin, "run", "-trust-domain", "example.org", "-server", e.bind,
		"-trust-bundle", e.bundleFile, "-join-token", tok, "-socket", filepath.Join(e.dir, "other.sock"),
		"-data-dir", filepath.Join(e.dir, "other-data"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "refused")
}

// TestHighAvailability: two servers share one PostgreSQL database; the
// agent knows both. The one it uses is killed under load: no workload
// fetch fails, and entries created through the other reach the agent.
func TestHighAvailability(t *testing.T) {
	dsn := pgtest.New(t)
	e := newEnv(t, "-datastore", dsn)
	other := newEnv(t, "-datastore", dsn)
	other.dir, other.bundleFile = e.dir, e.bundleFile
	other.serverArgs = []string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(e.dir, "server2"),
		"-bind", other.bind, "-admin-socket", other.adminSock, "-datastore", dsn}
	first := e.startServer()
	other.startServer()
	// Both CAs are in the bundle the agent is given.
	waitFor(t, "both CAs in the bundle", func() bool {
		out := must(t, e.serverBin, "bundle", "show", "-admin-socket", e.adminSock)
		return strings.Count(out, "BEGIN CERTIFICATE") == 2
	})
	require.NoError(t, os.WriteFile(e.bundleFile, []byte(must(t, e.serverBin, "bundle", "show", "-admin-socket", e.adminSock)), 0o644))

	// A token made on the second server admits the agent.
	e.startAgent(other.token(), e.bind, other.bind)
	id := e.agentID()
	e.entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	waitFor(t, "the first SVID", func() bool { out, code := e.fetch(); return code == 0 && strings.Contains(out, "/web") })

	count, stop := e.load()
	waitFor(t, "load before the failure", func() bool { return count() >= 10 })
	first.stop(t, syscall.SIGKILL)
	other.entry(id, "spiffe://example.org/db", "unix:gid:"+strconv.Itoa(os.Getgid()))
	waitFor(t, "the entry made on the surviving server", func() bool {
		out, code := e.fetch()
		return code == 0 && strings.Contains(out, "/db")
	})
	waitFor(t, "50 fetches under load", func() bool { return count() >= 50 })
	total, failed := stop()
	t.Logf("%d fetches while one of two servers was killed, %d failed", total, failed)
	assert.Positive(t, total)
	assert.Zero(t, failed)
}
