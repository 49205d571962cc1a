package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// daemon runs h.Run until the test ends, and returns what it returned
// through the channel.
func daemon(t *testing.T, h *Helper) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	var err error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// testConfig parses a configuration made of cert_dir = dir, cmd = cmd and
// renew_signal = signal (each of these two left out when empty), then
// lines (each one or more lines, such as x509Files), and fails the test if
// it is refused.
func testConfig(t testing.TB, dir, cmd, signal string, lines ...string) *Config {
	t.Helper()
	text := `cert_dir = "` + dir + `"` + "\n"
	if cmd != "" {
		text += `cmd = "` + cmd + `"` + "\n"
	}
	if signal != "" {
		text += `renew_signal = "` + signal + `"` + "\n"
	}
	for _, line := range lines {
		text += line + "\n"
	}
	cfg, err := ParseConfig([]byte(text))
	require.NoError(t, err, "%s", text)
	return cfg
}

// testBinary returns the path of this test binary, which a test gives as
// cmd (or starts itself) to run the reloader of TestMain.
func testBinary(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	return self
}

// newHelper returns New(cfg, opts), opts.Logger replaced by a logger that
// writes text lines (info and above) to the returned buffer.
func newHelper(cfg *Config, opts Options) (*Helper, *logtest.Buffer) {
	logs := new(logtest.Buffer)
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return New(cfg, opts), logs
}

func serialOf(t testing.TB, path string) string {
	t.Helper()
	certs := readCerts(t, path)
	require.NotEmpty(t, certs)
	return certs[0].SerialNumber.String()
}

// TestRunRotation: the files follow rotations; the process of cmd is
// started after the first write, with cmd_args, and signalled after each
// rotation, reading the new certificate; at shutdown it is stopped.
func TestRunRotation(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 0)
	dir := t.TempDir()
	log := filepath.Join(dir, "reloads.log")
	t.Setenv("RELOADER_LOG", log)
	t.Setenv("RELOADER_CERT", filepath.Join(dir, "svid.pem"))
	cfg := testConfig(t, dir, testBinary(t), "SIGUSR1", `cmd_args = "\"first arg\" second"`, x509Files)
	h, logs := newHelper(cfg, Options{Addr: s.addr})
	stop := daemon(t, h)

	first := s.handler.Snapshot(strconv.Itoa(os.Getuid())).X509SVIDs[0]
	waitFor(t, "the process of cmd to start", func() bool { return len(reloads(t, log)) == 1 })
	start := reloads(t, log)[0]
	assert.Equal(t, "start", start[1])
	assert.Equal(t, first.Certificates[0].SerialNumber.String(), start[2], "the process starts after the files are written")
	assert.Equal(t, "first arg,second", start[3])
	pid := start[0]

	for i := range 2 {
		next := s.rotate(t)
		want := next.Certificates[0].SerialNumber.String()
		waitFor(t, "the process to reload", func() bool { return len(reloads(t, log)) == 2+i })
		line := reloads(t, log)[1+i]
		assert.Equal(t, []string{pid, "SIGUSR1", want}, line[:3], "signalled, it reads the new certificate")
		assert.Equal(t, want, serialOf(t, filepath.Join(dir, "svid.pem")))
	}
	require.NoError(t, stop())
	lines := reloads(t, log)
	assert.Equal(t, []string{pid, "term"}, lines[len(lines)-1][:2], "the process is stopped with the helper")
	assert.Contains(t, logs.String(), "process of cmd exited")
}

// TestRunWaitsForEveryFile: the process of cmd starts only once every
// configured file has been written. While the JWT-SVIDs are refused, the
// X.509 files and the JWT bundle file are written and the helper waits;
// once the JWT-SVID files are written too, the process starts and finds
// every file there, and a later rotation signals it.
func TestRunWaitsForEveryFile(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 0)
	s.jwtRefused.Store(true)
	dir := t.TempDir()
	log := filepath.Join(dir, "reloads.log")
	var files []string
	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem", "jwt.json", "db.token", "other.token"} {
		files = append(files, filepath.Join(dir, name))
	}
	t.Setenv("RELOADER_LOG", log)
	t.Setenv("RELOADER_CERT", files[0])
	t.Setenv("RELOADER_FILES", strings.Join(files, string(os.PathListSeparator)))
	cfg := testConfig(t, dir, testBinary(t), "SIGUSR1", x509Files, `jwt_bundle_file_name = "jwt.json"
jwt_svids = [{jwt_audience = "db", jwt_svid_file_name = "db.token"},
             {jwt_audience = "other", jwt_svid_file_name = "other.token"}]`)
	h, logs := newHelper(cfg, Options{Addr: s.addr})
	stop := daemon(t, h)

	// The helper says it waits for the two JWT-SVID files alone (the X.509
	// and JWT bundle files written), or, were it to start cmd early, the
	// process records its start.
	waitingForTokens := func() bool {
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, "waiting for every file to be written") &&
				strings.Contains(line, "db.token") && strings.Contains(line, "other.token") &&
				!strings.Contains(line, "svid.pem") && !strings.Contains(line, "jwt.json") {
				return true
			}
		}
		return false
	}
	waitFor(t, "the helper to wait for the JWT-SVID files", func() bool { return waitingForTokens() || len(reloads(t, log)) > 0 })
	require.Empty(t, reloads(t, log), "cmd is not started while JWT-SVID files are missing")
	for _, f := range files[:4] {
		require.FileExists(t, f)
	}

	s.jwtRefused.Store(false)
	waitFor(t, "the process of cmd to start", func() bool { return len(reloads(t, log)) > 0 })
	start := reloads(t, log)[0]
	require.Len(t, start, 5)
	assert.Equal(t, "start", start[1])
	assert.Empty(t, start[4], "every file is there when the process starts")

	next := s.rotate(t)
	waitFor(t, "the process to reload", func() bool { return len(reloads(t, log)) == 2 })
	assert.Equal(t, []string{start[0], "SIGUSR1", next.Certificates[0].SerialNumber.String()}, reloads(t, log)[1][:3])
	require.NoError(t, stop())
	for _, line := range reloads(t, log)[:2] {
		assert.Empty(t, line[4], "no file is missing at any reload")
	}
}

// TestRunRestartsCmd: a cmd that exits (a reload command, such as psql
// -c 'SELECT pg_reload_conf()') is run again at the next rotation; without
// renew_signal a running one is left alone.
func TestRunRestartsCmd(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 0)
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	cfg := testConfig(t, dir, "/bin/sh", "", `cmd_args = "-c \"echo run >> `+count+`\""`, x509Files)
	h, logs := newHelper(cfg, Options{Addr: s.addr})
	daemon(t, h)
	runs := func() int {
		data, _ := os.ReadFile(count)
		return strings.Count(string(data), "run")
	}
	waitFor(t, "the first run", func() bool { return runs() == 1 })
	waitFor(t, "its exit", func() bool { return strings.Contains(logs.String(), "process of cmd exited") })
	s.rotate(t)
	waitFor(t, "the second run", func() bool { return runs() == 2 })
}

// TestRunPIDFile: the process of pid_file_name gets renew_signal after
// each rotation; the file is read each time.
func TestRunPIDFile(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 0)
	dir := t.TempDir()
	log := filepath.Join(dir, "reloads.log")
	proc := exec.Command(testBinary(t))
	proc.Env = append(os.Environ(), "RELOADER_LOG="+log, "RELOADER_CERT="+filepath.Join(dir, "svid.pem"))
	require.NoError(t, proc.Start())
	t.Cleanup(func() { proc.Process.Kill(); proc.Wait() })
	waitFor(t, "the process to start", func() bool { return len(reloads(t, log)) == 1 })
	pidFile := filepath.Join(dir, "app.pid")
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(proc.Process.Pid)+"\n"), 0o600))

	cfg := testConfig(t, dir, "", "SIGHUP", `pid_file_name = "`+pidFile+`"`, x509Files)
	h, logs := newHelper(cfg, Options{Addr: s.addr})
	stop := daemon(t, h)
	waitFor(t, "the first signal", func() bool { return len(reloads(t, log)) == 2 })
	assert.Equal(t, "SIGHUP", reloads(t, log)[1][1])

	// A pid file that does not name a process is logged, and the next
	// rotation reads it again.
	require.NoError(t, os.WriteFile(pidFile, []byte("garbage"), 0o600))
	s.rotate(t)
	waitFor(t, "the error", func() bool { return strings.Contains(logs.String(), `\"garbage\" is not a process ID`) })
	require.NoError(t, os.WriteFile(pidFile, []byte(strconv.Itoa(proc.Process.Pid)), 0o600))
	next := s.rotate(t)
	waitFor(t, "the second signal", func() bool { return len(reloads(t, log)) == 3 })
	assert.Equal(t, next.Certificates[0].SerialNumber.String(), reloads(t, log)[2][2])
	require.NoError(t, stop())
}

func TestSignalPIDFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ content, err string }{
		{"0", `"0" is not a process ID`},   // kill(0) would signal our own group
		{"-1", `"-1" is not a process ID`}, // kill(-1) every process we may signal
		{"", `"" is not a process ID`},
		{strings.Repeat("1", maxPIDFileSize+1), "larger than"},
	} {
		path := filepath.Join(dir, "pid")
		require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o600))
		require.ErrorContains(t, signalPIDFile(path, "SIGHUP"), tt.err, tt.content)
	}
	require.ErrorContains(t, signalPIDFile(filepath.Join(dir, "none"), "SIGHUP"), "no such file")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pid"), []byte("1"), 0o600))
	require.ErrorContains(t, signalPIDFile(filepath.Join(dir, "pid"), "SIGNOPE"), "unknown signal")
}

// TestRunJWT: the JWT-SVID files are fetched again before their tokens
// expire, the JWT bundle file follows the bundle, and without X.509 files
// cmd starts once the three JWT files are written, each of them there at
// its start. Each later JWT write is a renewal, and one of the first
// writes may come moments after the last of the others, before the
// reloader can have installed its signal handler: the signal is SIGWINCH,
// which a process ignores until then, not SIGUSR1, which would end it (as
// it would any process of cmd that starts slowly).
func TestRunJWT(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 2*time.Second)
	dir := t.TempDir()
	log := filepath.Join(dir, "reloads.log")
	t.Setenv("RELOADER_LOG", log)
	t.Setenv("RELOADER_FILES", strings.Join([]string{filepath.Join(dir, "db.token"), filepath.Join(dir, "other.token"),
		filepath.Join(dir, "jwt.json")}, string(os.PathListSeparator)))
	cfg := testConfig(t, dir, testBinary(t), "SIGWINCH", `jwt_svids = [{jwt_audience = "db", jwt_extra_audiences = ["cache"], jwt_svid_file_name = "db.token"},
             {jwt_audience = "other", jwt_svid_file_name = "other.token"}]
jwt_bundle_file_name = "jwt.json"
hint = "other"`)
	h := New(cfg, Options{Addr: s.addr})
	stop := daemon(t, h)
	token := func() string {
		data, _ := os.ReadFile(filepath.Join(dir, "db.token"))
		return string(data)
	}
	waitFor(t, "the JWT-SVID file", func() bool { return token() != "" })
	first := token()
	svid, err := jwtsvid.ParseInsecure(first, []string{"db"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/db", svid.ID.String(), "the SVID of the hint")
	assert.Equal(t, []string{"db", "cache"}, svid.Audience)
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "db.token")))
	waitFor(t, "the JWT bundle file", func() bool { _, err := os.Stat(filepath.Join(dir, "jwt.json")); return err == nil })
	waitFor(t, "a new token before the first expires", func() bool { return token() != first })
	assert.True(t, time.Now().Before(svid.Expiry.Add(time.Second)))
	waitFor(t, "cmd to start", func() bool { return len(reloads(t, log)) > 0 })
	start := reloads(t, log)[0]
	assert.Equal(t, []string{"start", ""}, []string{start[1], start[4]}, "every JWT file is there at the start")
	require.NoError(t, stop())
}

// TestRunHealth: the health endpoints answer spiffe-helper's document;
// a failed write makes the helper neither live nor ready.
func TestRunHealth(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, 0)
	dir := t.TempDir()
	cfg := testConfig(t, dir, "", "", x509Files, `jwt_svids = [{jwt_audience = "db", jwt_svid_file_name = "db.token"}]
health_checks {
  listener_enabled = true
}`)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	h := New(cfg, Options{Addr: s.addr, HealthListener: lis})
	stop := daemon(t, h)
	get := func(path string) (int, healthDoc) {
		resp, err := http.Get("http://" + lis.Addr().String() + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		var doc healthDoc
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(body, &doc), "%s", body)
		return resp.StatusCode, doc
	}
	waitFor(t, "readiness", func() bool { code, _ := get("/ready"); return code == http.StatusOK })
	code, doc := get("/live")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "OK", doc.Status)
	assert.Equal(t, "written", doc.Health.FileWriteStatuses.X509WriteStatus)
	assert.Equal(t, map[string]string{filepath.Join(dir, "db.token"): "written"}, doc.Health.FileWriteStatuses.JWTWriteStatus)

	require.NoError(t, os.RemoveAll(dir)) // the next write fails
	s.rotate(t)
	waitFor(t, "liveness to fail", func() bool { code, _ := get("/live"); return code == http.StatusServiceUnavailable })
	code, doc = get("/ready")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, "Service Unavailable", doc.Status)
	assert.Equal(t, "failed", doc.Health.FileWriteStatuses.X509WriteStatus)
	require.NoError(t, stop())
	_, err = http.Get("http://" + lis.Addr().String() + "/live")
	require.Error(t, err, "the health server stops with the helper")
}

func TestHealthCheck(t *testing.T) {
	cfg, err := ParseConfig([]byte(`jwt_bundle_file_name = "b"` + "\njwt_svids = [{jwt_audience = \"a\", jwt_svid_file_name = \"t\"}]"))
	require.NoError(t, err)
	h := newHealth(cfg)
	_, live := h.check(false)
	_, ready := h.check(true)
	assert.True(t, live, "nothing failed yet")
	assert.False(t, ready, "nothing written yet")
	h.set("b", statusWritten)
	_, ready = h.check(true)
	assert.False(t, ready, "one file is still unwritten")
	h.set("t", statusWritten)
	doc, ready := h.check(true)
	assert.True(t, ready)
	assert.Empty(t, doc.Health.FileWriteStatuses.X509WriteStatus, "no X.509 files configured")
}

func TestRunErrors(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	cfg, err := ParseConfig([]byte(`jwt_bundle_file_name = "b"` + "\nhealth_checks {\nlistener_enabled = true\n}"))
	require.NoError(t, err)

	// The health port is taken.
	lis, err := net.Listen("tcp", ":0")
	require.NoError(t, err)
	defer lis.Close()
	cfg.HealthChecks.BindPort = lis.Addr().(*net.TCPAddr).Port
	h := New(cfg, Options{Addr: "unix:///nonexistent/api.sock"})
	require.ErrorContains(t, h.Run(t.Context()), "address already in use")

	// A context done before the start.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.Error(t, New(cfg, Options{Addr: "unix:///nonexistent/api.sock"}).Run(ctx))
}

// TestOnce: non-daemon mode writes every file once and returns.
func TestOnce(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, time.Minute)
	dir := t.TempDir()
	cfg := testConfig(t, dir, "", "", x509Files, `jwt_svids = [{jwt_audience = "db", jwt_svid_file_name = "db.token"}]
jwt_bundle_file_name = "jwt.json"
jwt_svid_file_mode = 0640`)
	require.NoError(t, New(cfg, Options{Addr: s.addr}).Once(t.Context()))
	want := s.handler.Snapshot(strconv.Itoa(os.Getuid())).X509SVIDs[0].Certificates[0].SerialNumber.String()
	assert.Equal(t, want, serialOf(t, filepath.Join(dir, "svid.pem")))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "svid_key.pem")))
	assert.Equal(t, os.FileMode(0o640), mode(t, filepath.Join(dir, "db.token")))
	assert.Equal(t, os.FileMode(0o600), mode(t, filepath.Join(dir, "jwt.json")))

	// An agent that is not there is waited for, up to OnceTimeout.
	h, logs := newHelper(cfg, Options{Addr: "unix://" + filepath.Join(dir, "none.sock"), OnceTimeout: 300 * time.Millisecond})
	err := h.Once(t.Context())
	require.ErrorContains(t, err, "gave up after 300ms")
	assert.Contains(t, logs.String(), "waiting for the Workload API")

	// Writing fails: at once.
	cfg.CertDir = filepath.Join(dir, "none")
	require.ErrorContains(t, New(cfg, Options{Addr: s.addr}).Once(t.Context()), "writing the X.509 files")
	cfg.SVIDFileName = ""
	require.ErrorContains(t, New(cfg, Options{Addr: s.addr}).Once(t.Context()), "writing the JWT bundle file")
	cfg.JWTBundleFileName = ""
	require.ErrorContains(t, New(cfg, Options{Addr: s.addr}).Once(t.Context()), "none/db.token")
	cfg.CertDir = dir
	cfg.Hint = "nope"
	require.ErrorContains(t, New(cfg, Options{Addr: s.addr}).Once(t.Context()), `no JWT-SVID has the hint "nope"`)
	cfg.Hint = ""

	// An address the client refuses.
	require.ErrorContains(t, New(cfg, Options{Addr: "http://x"}).Once(t.Context()), "workloadapi")
}

// TestRunWatchFails: a socket whose server is no Workload API answers
// Unimplemented, which is not retried: daemon mode ends with the error.
func TestRunWatchFails(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	dir, err := os.MkdirTemp("", "helper")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	lis, err := net.Listen("unix", filepath.Join(dir, "api.sock"))
	require.NoError(t, err)
	srv := grpc.NewServer()
	go srv.Serve(lis)
	defer srv.Stop()
	for _, conf := range []string{
		"svid_file_name = \"a\"\nsvid_key_file_name = \"b\"\nsvid_bundle_file_name = \"c\"",
		`jwt_bundle_file_name = "b"`,
	} {
		cfg, err := ParseConfig([]byte(conf))
		require.NoError(t, err)
		cfg.CertDir = dir
		h, logs := newHelper(cfg, Options{Addr: "unix://" + filepath.Join(dir, "api.sock")})
		err = h.Run(t.Context())
		require.Error(t, err)
		assert.Equal(t, codes.Unimplemented, status.Code(err), "%v", err)
		assert.Regexp(t, `^watching (X\.509 SVIDs|JWT bundles): `, err.Error())
		assert.Contains(t, logs.String(), "watch failed", "the watcher is told too")
	}
}

// TestRunWaitsForAgent: an agent that is not there yet is retried, with a
// warning, until it comes.
func TestRunWaitsForAgent(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	dir := t.TempDir()
	cfg, err := ParseConfig([]byte("svid_file_name = \"a\"\nsvid_key_file_name = \"b\"\nsvid_bundle_file_name = \"c\"\njwt_bundle_file_name = \"j\""))
	require.NoError(t, err)
	cfg.CertDir = dir
	sockDir, err := os.MkdirTemp("", "helper")
	require.NoError(t, err)
	defer os.RemoveAll(sockDir)
	h, logs := newHelper(cfg, Options{Addr: "unix://" + filepath.Join(sockDir, "api.sock")})
	stop := daemon(t, h)
	waitFor(t, "the warnings", func() bool {
		return logs.Contains("X.509 watch failed; retrying") && logs.Contains("JWT bundle watch failed; retrying")
	})
	require.NoError(t, stop())
	_, err = os.Stat(filepath.Join(dir, "a"))
	require.ErrorIs(t, err, os.ErrNotExist, "nothing written without an agent")
}

// TestRunFailures: what fails in daemon mode is logged, and the helper
// goes on: a cmd that cannot start, JWT files that cannot be written
// (retried), a child that ignores SIGTERM (killed at shutdown).
func TestRunFailures(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	s := startServer(t, time.Minute)

	t.Run("cmd cannot start, JWT files cannot be written", func(t *testing.T) {
		dir := t.TempDir()
		none := filepath.Join(dir, "none")
		cfg := testConfig(t, none, none, "", `jwt_svids = [{jwt_audience = "db", jwt_svid_file_name = "db.token"}]
jwt_bundle_file_name = "jwt.json"`)
		h, logs := newHelper(cfg, Options{Addr: s.addr})
		stop := daemon(t, h)
		waitFor(t, "the errors", func() bool {
			return logs.Contains("cannot write a JWT-SVID file; retrying") && logs.Contains("cannot write the JWT bundle file")
		})
		require.NoError(t, stop())
		assert.NotContains(t, logs.String(), "process of cmd started")
	})

	t.Run("a child that ignores SIGTERM", func(t *testing.T) {
		dir := t.TempDir()
		log := filepath.Join(dir, "reloads.log")
		t.Setenv("RELOADER_LOG", log)
		t.Setenv("RELOADER_IGNORE_TERM", "1")
		cfg := testConfig(t, dir, testBinary(t), "", x509Files)
		h, logs := newHelper(cfg, Options{Addr: s.addr, StopTimeout: 200 * time.Millisecond})
		stop := daemon(t, h)
		waitFor(t, "the child", func() bool { return len(reloads(t, log)) == 1 })
		s.rotate(t)
		waitFor(t, "the second write", func() bool { return strings.Count(logs.String(), "X.509 files written") == 2 })
		assert.Len(t, reloads(t, log), 1, "without renew_signal, a running child is left alone")
		require.NoError(t, stop())
		assert.Contains(t, logs.String(), "process of cmd still running after SIGTERM; killing it")
		assert.Contains(t, logs.String(), "signal: killed")
	})
}
