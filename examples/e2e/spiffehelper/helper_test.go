package spiffehelper_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

func TestMain(m *testing.M) { progtest.Main(m) }

// upstream is where spiffe-helper's configuration files are kept, as
// spiffe-helper's repository has them.
const upstream = "../../spiffe-helper/cli/testdata/upstream"

// build compiles spiffe-helper and the stand-in ghostunnel into a new
// directory and returns it.
func build(t *testing.T) string {
	t.Helper()
	dir := progtest.ShortTemp(t)
	for _, p := range []struct{ out, pkg string }{
		{"spiffe-helper", "github.com/spiffekit/spiffekit/examples/spiffe-helper"},
		{"ghostunnel", "./testdata/ghostunnel"},
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, p.out), p.pkg).CombinedOutput()
		require.NoError(t, err, "go build %s: %s", p.pkg, out)
	}
	return dir
}

// upstreamConfig returns spiffe-helper's configuration file name with its
// agent_address pointed at the agent of e: the one change, checked.
func upstreamConfig(t *testing.T, e *progtest.Env, name string) []byte {
	t.Helper()
	orig, err := os.ReadFile(filepath.Join(upstream, name))
	require.NoError(t, err)
	const line = `agent_address = "/tmp/spire-agent/public/api.sock"`
	require.Equal(t, 1, strings.Count(string(orig), line))
	return []byte(strings.Replace(string(orig), line, `agent_address = "`+e.APISock+`"`, 1))
}

// workload starts a server and an agent with short SVID lifetimes, and
// registers this process's uid.
func workload(t *testing.T) *progtest.Env {
	t.Helper()
	e := progtest.NewEnv(t, "-x509-svid-ttl", "8s", "-jwt-svid-ttl", "1m")
	e.StartServer()
	e.StartAgent(e.Token())
	e.Entry(e.AgentID(), "spiffe://example.org/Database", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the workload's SVID", func() bool { _, code := e.Fetch(); return code == 0 })
	return e
}

// helper starts spiffe-helper in dir with args, the programs of bin first
// in $PATH, and env; it is killed, if still running, when the test ends.
type helper struct {
	cmd  *exec.Cmd
	out  logtest.Buffer
	done chan struct{}
}

func startHelper(t *testing.T, bin, dir string, env []string, args ...string) *helper {
	t.Helper()
	h := &helper{cmd: exec.Command(filepath.Join(bin, "spiffe-helper"), args...), done: make(chan struct{})}
	h.cmd.Dir = dir
	h.cmd.Env = append(os.Environ(), append(env, "PATH="+bin+":"+os.Getenv("PATH"))...)
	h.cmd.Stdout, h.cmd.Stderr = &h.out, &h.out
	require.NoError(t, h.cmd.Start())
	go func() { h.cmd.Wait(); close(h.done) }()
	t.Cleanup(func() {
		h.cmd.Process.Kill()
		<-h.done
		if t.Failed() {
			t.Logf("output of spiffe-helper:\n%s", h.out.String())
		}
	})
	return h
}

// loads returns the lines the stand-in ghostunnel wrote to log.
func loads(log string) [][]string {
	data, _ := os.ReadFile(log)
	var out [][]string
	for line := range strings.Lines(string(data)) {
		out = append(out, strings.Split(strings.TrimSuffix(line, "\n"), "\t"))
	}
	return out
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	require.NoError(t, err)
	return info.Mode().Perm()
}

// TestDaemon runs spiffe-helper with the example configuration of
// spiffe-helper's README: it starts "ghostunnel" (found in $PATH, as
// spiffe-helper finds it) once the files are written, and at each rotation
// rewrites them and sends it SIGUSR1, upon which it loads the new
// certificate. The files have the modes the configuration asks for, the
// JWT-SVID verifies with the JWT bundle file, and SIGTERM stops both.
func TestDaemon(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	bin := build(t)
	e := workload(t)
	dir := progtest.ShortTemp(t)
	require.NoError(t, os.Mkdir(filepath.Join(dir, "certs"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "helper.conf"), upstreamConfig(t, e, "readme.conf"), 0o600))
	log := filepath.Join(dir, "ghostunnel.log")
	h := startHelper(t, bin, dir, []string{"GHOSTUNNEL_LOG=" + log})
	certs := filepath.Join(dir, "certs")

	progtest.WaitFor(t, "ghostunnel to start", func() bool { return len(loads(log)) > 0 })
	first := loads(log)[0]
	require.Equal(t, "start", first[1])
	assert.Equal(t, "ok", first[3], "ghostunnel found a key, a certificate and a bundle that go together")
	pid := first[0]
	ghostunnel, err := strconv.Atoi(pid)
	require.NoError(t, err)

	// Two rotations (SVIDs of 8 s, renewed at half life), each a reload of
	// the new certificate by the same process.
	progtest.WaitFor(t, "two reloads", func() bool { return len(loads(log)) >= 3 })
	serials := map[string]bool{}
	for _, l := range loads(log)[:3] {
		assert.Equal(t, pid, l[0], "the same process, signalled")
		assert.Equal(t, "ok", l[3], l)
		serials[l[2]] = true
	}
	assert.Len(t, serials, 3, "each load saw a new certificate")
	for _, l := range loads(log)[1:3] {
		assert.Equal(t, "SIGUSR1", l[1], "renew_signal")
	}

	// The files: modes 0444 as asked, the SVID chains to the bundle.
	for _, name := range []string{"svid.pem", "svid_key.pem", "svid_bundle.pem", "bundle.json", "jwt_svid.token"} {
		assert.Equal(t, os.FileMode(0o444), fileMode(t, filepath.Join(certs, name)), name)
	}
	svid, err := x509svid.Load(filepath.Join(certs, "svid.pem"), filepath.Join(certs, "svid_key.pem"))
	require.NoError(t, err)
	td := spiffeid.RequireTrustDomainFromString("example.org")
	bundle, err := x509bundle.Load(td, filepath.Join(certs, "svid_bundle.pem"))
	require.NoError(t, err)
	id, _, err := x509svid.Verify(svid.Certificates, bundle)
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/Database", id.String())

	// The JWT-SVID, for the audience and the extra ones, verifies with
	// the JWT bundle file (trust domain name to base64 JWK Set).
	data, err := os.ReadFile(filepath.Join(certs, "bundle.json"))
	require.NoError(t, err)
	var doc map[string]string
	require.NoError(t, json.Unmarshal(data, &doc))
	jwks, err := base64.StdEncoding.DecodeString(doc["example.org"])
	require.NoError(t, err)
	jwtBundle, err := jwtbundle.Parse(td, jwks)
	require.NoError(t, err)
	token, err := os.ReadFile(filepath.Join(certs, "jwt_svid.token"))
	require.NoError(t, err)
	jwt, err := jwtsvid.ParseAndValidate(string(token), jwtBundle, []string{"your-audience"})
	require.NoError(t, err)
	assert.Equal(t, "spiffe://example.org/Database", jwt.ID.String())
	assert.ElementsMatch(t, []string{"your-audience", "your-extra-audience-1", "your-extra-audience-2"}, jwt.Audience)

	// SIGTERM: spiffe-helper stops ghostunnel and exits 0.
	require.NoError(t, h.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-h.done:
	case <-time.After(progtest.Timeout):
		t.Fatal("spiffe-helper did not stop on SIGTERM")
	}
	assert.Equal(t, 0, h.cmd.ProcessState.ExitCode(), h.out.String())
	l := loads(log)
	assert.Equal(t, []string{pid, "term"}, l[len(l)-1][:2])
	assert.ErrorIs(t, syscall.Kill(ghostunnel, 0), syscall.ESRCH, "ghostunnel is gone")
	assert.NotContains(t, h.out.String(), "level=ERROR")
}

// TestOnce runs spiffe-helper's own helper.conf without daemon mode, as an
// init container does: it writes the files, with the default modes, and
// exits 0; it exits 1 when it cannot write them.
func TestOnce(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	bin := build(t)
	e := workload(t)
	dir := progtest.ShortTemp(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "helper.conf"), upstreamConfig(t, e, "helper.conf"), 0o600))

	// cert_dir ("certs") must exist, as in spiffe-helper.
	out, errOut, code := progtest.Run(t, nil, "/bin/sh", "-c", "cd "+dir+" && exec "+filepath.Join(bin, "spiffe-helper")+" -daemon-mode=false")
	assert.Equal(t, 1, code, out+errOut)
	assert.Contains(t, errOut, "spiffe-helper: writing the X.509 files: writing certs/svid_bundle.pem: no such file or directory")

	require.NoError(t, os.Mkdir(filepath.Join(dir, "certs"), 0o755))
	out, errOut, code = progtest.Run(t, nil, "/bin/sh", "-c", "cd "+dir+" && exec "+filepath.Join(bin, "spiffe-helper")+" -daemon-mode=false")
	require.Equal(t, 0, code, out+errOut)
	certs := filepath.Join(dir, "certs")
	assert.Equal(t, os.FileMode(0o644), fileMode(t, filepath.Join(certs, "svid.pem")))
	assert.Equal(t, os.FileMode(0o600), fileMode(t, filepath.Join(certs, "svid_key.pem")))
	assert.Equal(t, os.FileMode(0o644), fileMode(t, filepath.Join(certs, "svid_bundle.pem")))
	svid, err := x509svid.Load(filepath.Join(certs, "svid.pem"), filepath.Join(certs, "svid_key.pem"))
	require.NoError(t, err)
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString("example.org"), filepath.Join(certs, "svid_bundle.pem"))
	require.NoError(t, err)
	_, _, err = x509svid.Verify(svid.Certificates, bundle)
	require.NoError(t, err)
	fetched, _ := e.Fetch()
	assert.Contains(t, fetched, "spiffe://example.org/Database")
	entries, err := os.ReadDir(certs)
	require.NoError(t, err)
	assert.Len(t, entries, 3, "no temporary file left behind")
}
