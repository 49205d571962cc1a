package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/examples/internal/metrics/metricstest"
	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var td = spiffeid.RequireTrustDomainFromString("example.org")

// server is a node API server on loopback (rotating CA, memstore, join
// tokens; see nodetest.StartNodeServer) with its bundle in a PEM file, for
// -trust-bundle.
type server struct {
	*nodetest.NodeServer
	bundle string
}

func startServer(t *testing.T) *server {
	t.Helper()
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{})
	return &server{NodeServer: s, bundle: bundleFile(t, s.CA)}
}

// bundleFile writes the X.509 authorities of m to a PEM file and returns
// its path.
func bundleFile(t *testing.T, m *rotation.Manager) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "bundle.pem")
	require.NoError(t, os.WriteFile(bundle, pemutil.EncodeCertificates(m.Bundle().X509Authorities()), 0o644))
	return bundle
}

// foreignToken returns a well-formed join token that no server of the test
// issued.
func foreignToken(t *testing.T) string {
	t.Helper()
	tok, _, err := jointoken.Generate(t.Context(), memstore.New(memstore.Config{}), jointoken.Params{})
	require.NoError(t, err)
	return tok
}

// agentID returns the ID of the one agent the server has attested.
func (s *server) agentID(t *testing.T) spiffeid.ID {
	t.Helper()
	agents, err := s.Store.ListAgents(t.Context())
	require.NoError(t, err)
	require.Len(t, agents, 1)
	return agents[0].ID
}

// socketPath returns a short socket path: unix socket paths are limited to
// 108 bytes, which t.TempDir can exceed.
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "a")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "api.sock")
}

// running is a "spiffe-agent run" in a goroutine.
type running struct {
	cancel context.CancelFunc
	done   chan int
	logs   *logtest.Buffer
}

func startRun(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{cancel: cancel, done: make(chan int, 1), logs: &logtest.Buffer{}}
	go func() { r.done <- Main(ctx, append([]string{"run"}, args...), io.Discard, r.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return after its context ended")
		}
	})
	return r
}

// stop ends the run and returns its exit code.
func (r *running) stop(t *testing.T) int {
	t.Helper()
	r.cancel()
	select {
	case code := <-r.done:
		r.done <- code // for the cleanup
		return code
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context ended")
		return -1
	}
}

// waitFor polls cond until it holds, failing the test after 20 seconds or
// if the run exits.
func (r *running) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		select {
		case code := <-r.done:
			r.done <- code
			t.Fatalf("run exited with %d while waiting for %s; logs:\n%s", code, what, r.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; logs:\n%s", what, r.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// cli runs one command and returns its exit code, stdout and stderr.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Main(t.Context(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

var metricsAddrRE = regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(body)
}

func TestRunEndToEnd(t *testing.T) {
	s := startServer(t)
	socket := socketPath(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	cfg := writeFile(t, "agent.json", `{"workload_attestors": {"unix": {"skip_hash": true}}, "log_level": "debug"}`)
	r := startRun(t, "-config", cfg, "-trust-domain", "example.org", "-server", s.Addr,
		"-trust-bundle", s.bundle, "-join-token", s.Token(t), "-socket", socket, "-data-dir", dataDir,
		"-metrics-addr", "127.0.0.1:0")
	// The socket file appears at bind, before the socket listens and gets
	// its mode: the agent says it started once both are done.
	r.waitFor(t, "the agent to start", func() bool { return r.logs.Contains("agent started") })

	// The socket is reachable by every local user; the data directory is
	// private.
	fi, err := os.Stat(socket)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket|0o777, fi.Mode()&(os.ModeSocket|os.ModePerm))
	fi, err = os.Stat(dataDir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())

	// No entry yet: PermissionDenied once the agent has synced (before,
	// Unavailable: it cannot tell yet), which the healthcheck takes as a
	// sign of life.
	r.waitFor(t, "the first sync", func() bool { return r.logs.Contains("synced with the server") })
	code, _, stderr := cli(t, "api", "fetch", "x509", "-socket", socket)
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent api fetch x509: no identity for this process (uid "+strconv.Itoa(os.Getuid())+
		"): the agent has no registration entry that matches it\n", stderr)
	code, stdout, stderr := cli(t, "healthcheck", "-socket", socket)
	assert.Equal(t, ExitOK, code, stderr)
	assert.Equal(t, "healthy: the Workload API at unix://"+socket+" answered\n", stdout)

	id := s.Register(t, s.agentID(t), "/web").SPIFFEID
	var out string
	r.waitFor(t, "the SVID", func() bool {
		code, out, _ = cli(t, "api", "fetch", "x509", "-socket", socket, "-timeout", "2s")
		return code == ExitOK
	})
	lines := strings.Split(out, "\n")
	require.GreaterOrEqual(t, len(lines), 6, out)
	assert.Equal(t, "SVID 0", lines[0])
	assert.Equal(t, "  SPIFFE ID:  "+id.String(), lines[1])
	assert.Regexp(t, `^  Expires:    \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(in .+\)$`, lines[2])
	assert.Contains(t, out, "  Bundle:     example.org, 1 X.509 authority(ies)\n")

	// -write saves the SVID, its key (0600) and the bundle.
	outDir := filepath.Join(t.TempDir(), "out")
	code, out, stderr = cli(t, "api", "fetch", "x509", "-socket", "unix://"+socket, "-write", outDir)
	require.Equal(t, ExitOK, code, stderr)
	assert.Contains(t, out, "Written to "+outDir)
	svid, err := x509svid.Load(filepath.Join(outDir, "svid.0.pem"), filepath.Join(outDir, "svid.0.key"))
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	fi, err = os.Stat(filepath.Join(outDir, "svid.0.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	roots, err := os.ReadFile(filepath.Join(outDir, "bundle.0.pem"))
	require.NoError(t, err)
	certs, err := pemutil.ParseCertificates(roots)
	require.NoError(t, err)
	assert.Equal(t, s.CA.Bundle().X509Authorities(), certs)

	// JWT-SVIDs: the ID on one line, the token on the next.
	code, out, stderr = cli(t, "api", "fetch", "jwt", "-socket", socket, "-audience", "db", "-audience", "cache")
	require.Equal(t, ExitOK, code, stderr)
	lines = strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2, out)
	assert.Equal(t, id.String(), lines[0])
	tok, err := jwtsvid.ParseInsecure(lines[1], []string{"db"})
	require.NoError(t, err)
	assert.Equal(t, id, tok.ID)
	assert.ElementsMatch(t, []string{"db", "cache"}, tok.Audience)
	code, out, stderr = cli(t, "api", "fetch", "jwt", "-socket", socket, "-audience", "db", "-spiffe-id", id.String())
	require.Equal(t, ExitOK, code, stderr)
	assert.True(t, strings.HasPrefix(out, id.String()+"\n"))
	// An agent run without -wit-svids serves none.
	code, _, stderr = cli(t, "api", "fetch", "wit", "-socket", socket)
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent api fetch wit: the agent serves no WIT-SVIDs: run it with -wit-svids (wit_svids), and its server with -wit-svids\n", stderr)

	// Metrics and health. The entries the workload was served from count
	// as soon as they are stored; the sync that brought them counts once
	// all of it is applied (the bundle saved too), which the agent logs.
	r.waitFor(t, "the first sync applied", func() bool { return r.logs.Contains("synced with the server") })
	m := metricsAddrRE.FindStringSubmatch(r.logs.String())
	require.NotNil(t, m, r.logs.String())
	samples := metricstest.Scrape(t, "http://"+m[1]+"/metrics")
	for _, tt := range []struct {
		series []string // name, then label pairs
		min    float64  // the value is at least this
		max    float64  // and at most this; 0 means no bound
	}{
		{series: []string{"spiffekit_agent_entries"}, min: 1, max: 1},
		{series: []string{"spiffekit_agent_connected"}, min: 1, max: 1},
		{series: []string{"spiffekit_agent_healthy"}, min: 1, max: 1},
		{series: []string{"spiffekit_agent_syncs_total"}, min: 1},
		{series: []string{"spiffekit_agent_last_sync_timestamp_seconds"}, min: 1},
		{series: []string{"spiffekit_agent_svid_expiry_timestamp_seconds"}, min: float64(time.Now().Unix())},
		{series: []string{"spiffekit_agent_workload_api_request_duration_seconds_count", "method", "FetchX509SVID", "code", "OK"}, min: 1},
		{series: []string{"spiffekit_agent_workload_api_request_duration_seconds_count", "method", "FetchX509SVID", "code", "PermissionDenied"}, min: 1},
		{series: []string{"spiffekit_agent_workload_api_request_duration_seconds_count", "method", "FetchJWTSVID", "code", "OK"}, min: 2},
		{series: []string{"spiffekit_agent_workload_attestation_duration_seconds_count", "attestor", "unix", "outcome", "ok"}, min: 4},
		{series: []string{"spiffekit_agent_svids_signed_total", "svid_type", "x509", "outcome", "ok"}, min: 1},
		{series: []string{"spiffekit_agent_svids_signed_total", "svid_type", "jwt", "outcome", "ok"}, min: 1},
		{series: []string{"spiffekit_agent_sign_request_duration_seconds_count", "svid_type", "x509"}, min: 1},
		{series: []string{"go_goroutines"}, min: 1},
		{series: []string{"process_start_time_seconds"}, min: 1},
	} {
		v, ok := samples.Get(tt.series[0], tt.series[1:]...)
		if assert.True(t, ok, "no series %v", tt.series) {
			assert.GreaterOrEqual(t, v, tt.min, "%v", tt.series)
			if tt.max != 0 {
				assert.LessOrEqual(t, v, tt.max, "%v", tt.series)
			}
		}
	}
	code, body := httpGet(t, "http://"+m[1]+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)

	// SIGINT/SIGTERM (the context) ends the run cleanly; the socket goes.
	assert.Equal(t, ExitOK, r.stop(t))
	assert.False(t, exists(socket), "the socket is removed on shutdown")
	assert.Contains(t, r.logs.String(), "msg=stopped")
	assert.NotContains(t, r.logs.String(), "INSECURE")
	if _, set := os.LookupEnv("GOGC"); !set {
		assert.Contains(t, r.logs.String(), `gogc="50, at least 8 MiB of headroom"`)
	}

	// The healthcheck now fails.
	code, _, stderr = cli(t, "healthcheck", "-socket", socket)
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent healthcheck: unhealthy: no socket at "+socket+"\n", stderr)

	// A restart reuses the saved agent SVID: no join token needed, and no
	// second agent at the server.
	r2 := startRun(t, "-config", cfg, "-trust-domain", "example.org", "-server", s.Addr, "-socket", socket, "-data-dir", dataDir)
	r2.waitFor(t, "the socket after a restart", func() bool { return exists(socket) })
	r2.waitFor(t, "the SVID after a restart", func() bool {
		code, out, _ = cli(t, "api", "fetch", "x509", "-socket", socket, "-timeout", "2s")
		return code == ExitOK
	})
	assert.Contains(t, out, id.String())
	assert.Equal(t, s.agentID(t), s.agentID(t))
	assert.Contains(t, r2.logs.String(), "reusing the saved agent SVID")
	assert.Equal(t, ExitOK, r2.stop(t))
}

func TestRunRefusedJoinToken(t *testing.T) {
	s := startServer(t)
	// A well-formed token that this server never issued.
	tok := foreignToken(t)
	_, secret, _ := strings.Cut(tok, ".")
	var stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "-trust-domain", "example.org", "-server", s.Addr,
		"-trust-bundle", s.bundle, "-join-token", tok, "-socket", socketPath(t)}, io.Discard, &stderr)
	assert.Equal(t, ExitFailure, code)
	last := lastLine(stderr.String())
	assert.Equal(t, "spiffe-agent run: agent: the server refused attestation: nodeapi: attesting: PermissionDenied: nodeserver: node attestation refused", last)
	assert.NotContains(t, stderr.String(), secret, "the token's secret is never printed")
}

func TestRunWithoutAttestorAndNoSavedSVID(t *testing.T) {
	s := startServer(t)
	var stderr bytes.Buffer
	code := Main(t.Context(), []string{"run", "-trust-domain", "example.org", "-server", s.Addr,
		"-trust-bundle", s.bundle, "-socket", socketPath(t), "-data-dir", t.TempDir()}, io.Discard, &stderr)
	assert.Equal(t, ExitFailure, code)
	assert.Equal(t, "spiffe-agent run: no node attestor configured, and no usable agent SVID saved in the data directory: give -join-token, x509pop, k8s_psat, tpm, aws_iid, gcp_iit, azure_msi or azure_imds",
		lastLine(stderr.String()))
}

func TestRunInsecureBootstrap(t *testing.T) {
	s := startServer(t)
	socket := socketPath(t)
	r := startRun(t, "-trust-domain", "example.org", "-server", s.Addr, "-insecure-bootstrap",
		"-join-token", s.Token(t), "-socket", socket, "-log-format", "json")
	r.waitFor(t, "the socket", func() bool { return exists(socket) })
	assert.Contains(t, r.logs.String(), `"level":"WARN","msg":"INSECURE BOOTSTRAP`)
	assert.Contains(t, r.logs.String(), `"msg":"no -data-dir`)
	assert.Equal(t, ExitOK, r.stop(t))
}

func TestRunStoppedWhileServerIsUnreachable(t *testing.T) {
	// Nothing listens on this port: the agent retries until stopped, and a
	// stop during start-up is a clean exit.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	bundle := bundleFile(t, m)
	r := startRun(t, "-trust-domain", "example.org", "-server", addr, "-trust-bundle", bundle,
		"-join-token", foreignToken(t), "-socket", socketPath(t))
	r.waitFor(t, "a failed attempt", func() bool { return strings.Contains(r.logs.String(), "attestation failed; retrying") })
	assert.Equal(t, ExitOK, r.stop(t))
	assert.Contains(t, r.logs.String(), "stopped before the agent started")
}

func TestRunStartupErrors(t *testing.T) {
	dir := t.TempDir()
	pemFile := writeFile(t, "bundle.pem", "not a certificate")
	noCerts := writeFile(t, "empty.pem", "")
	jsonBad := writeFile(t, "bundle.json", `{"keys": [}`)
	jsonEmpty := writeFile(t, "bundle.json", `{"keys": []}`)
	notDir := writeFile(t, "file", "x")
	leaf, _ := testca.New(t, td).NewLeaf(t, spiffeid.RequireFromPath(td, "/spiffekit/server"))
	notCA := writeFile(t, "leaf.pem", string(pemutil.EncodeCertificates(leaf)))
	tok := foreignToken(t)
	base := []string{"run", "-trust-domain", "example.org", "-server", "127.0.0.1:1", "-join-token", tok, "-socket", filepath.Join(dir, "api.sock")}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing bundle", []string{"-trust-bundle", filepath.Join(dir, "nope.pem")}, "-trust-bundle: open " + filepath.Join(dir, "nope.pem") + ": no such file or directory"},
		{"bad PEM bundle", []string{"-trust-bundle", pemFile}, "-trust-bundle " + pemFile + ": x509bundle: cannot parse certificate: no CERTIFICATE PEM blocks found"},
		{"empty bundle", []string{"-trust-bundle", noCerts}, "-trust-bundle " + noCerts + " holds no X.509 authority"},
		{"bad JSON bundle", []string{"-trust-bundle", jsonBad}, "-trust-bundle " + jsonBad + ": spiffebundle: unable to parse JWKS: "},
		{"JSON bundle without X.509 authorities", []string{"-trust-bundle", jsonEmpty}, "-trust-bundle " + jsonEmpty + " holds no X.509 authority"},
		{"bundle of a certificate that is not a CA", []string{"-trust-bundle", notCA}, "-trust-bundle " + notCA + ": the certificate O=testca is not a CA certificate: give the CA certificates of the trust domain (spiffe-server bundle show prints them)"},
		{"malformed join token", []string{"-join-token", "not-a-token"}, "-join-token: jointoken: token has no '.' between ID and secret"},
		{"missing x509pop files", []string{"-join-token", "", "-x509pop-cert", filepath.Join(dir, "c"), "-x509pop-key", filepath.Join(dir, "k")},
			"node attestor: x509pop: reading certificates: open " + filepath.Join(dir, "c") + ": no such file or directory"},
		{"data dir under a file", []string{"-insecure-bootstrap", "-data-dir", filepath.Join(notDir, "data")}, "-data-dir: mkdir " + notDir + ": not a directory"},
		{"socket dir under a file", []string{"-insecure-bootstrap", "-socket", filepath.Join(notDir, "api.sock")}, "-socket: mkdir " + notDir + ": not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Main(t.Context(), append(base[:len(base):len(base)], tt.args...), io.Discard, &stderr)
			assert.Equal(t, ExitFailure, code, stderr.String())
			last := lastLine(stderr.String())
			assert.True(t, strings.HasPrefix(last, "spiffe-agent run: "+tt.want), "%q does not start with %q", last, "spiffe-agent run: "+tt.want)
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunUnverifiableServer: an agent whose trust bundle does not verify
// its server on its first attestation (another CA, another trust domain)
// exits 1 at once, saying so, instead of retrying forever.
func TestRunUnverifiableServer(t *testing.T) {
	s := startServer(t)
	other, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	otherTD, err := rotation.New(t.Context(), rotation.Config{TrustDomain: spiffeid.RequireTrustDomainFromString("other.org")})
	require.NoError(t, err)
	for name, tc := range map[string]struct{ td, bundle string }{
		"another CA":           {"example.org", bundleFile(t, other)},
		"another trust domain": {"other.org", bundleFile(t, otherTD)},
	} {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := Main(t.Context(), []string{"run", "-trust-domain", tc.td, "-server", s.Addr, "-trust-bundle", tc.bundle,
				"-join-token", s.Token(t), "-socket", socketPath(t)}, io.Discard, &stderr)
			assert.Equal(t, ExitFailure, code)
			last := lastLine(stderr.String())
			assert.True(t, strings.HasPrefix(last, "spiffe-agent run: agent: the trust bundle does not verify the servers of "+tc.td+
				" (is it their trust domain's bundle?): nodeapi: "), last)
			assert.NotContains(t, stderr.String(), "retrying")
		})
	}
}

// TestRunSocketBesideDataDir: with the socket and the data directory in
// one directory the agent creates (the README's /tmp/agent/api.sock and
// /tmp/agent/data), that directory lets every user reach the socket
// (0755) while the data directory stays private (0700).
func TestRunSocketBesideDataDir(t *testing.T) {
	base := filepath.Join(filepath.Dir(socketPath(t)), "agent")
	socket, data := filepath.Join(base, "api.sock"), filepath.Join(base, "data")
	r := startRun(t, "-trust-domain", "example.org", "-server", "127.0.0.1:1", "-insecure-bootstrap",
		"-join-token", foreignToken(t), "-socket", socket, "-data-dir", data)
	r.waitFor(t, "the first attempt", func() bool { return r.logs.Contains("attestation failed; retrying") })
	for dir, mode := range map[string]os.FileMode{base: 0o755, data: 0o700} {
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		assert.Equal(t, mode, fi.Mode().Perm(), dir)
	}
	assert.Equal(t, ExitOK, r.stop(t))
}

// The agent collects garbage at GOGC=50, paced, unless $GOGC says
// otherwise, and logs which.
func TestGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	t.Setenv("GOGC", "") // restored when the test ends
	os.Unsetenv("GOGC")
	v, paced := setGCPercent()
	assert.Equal(t, "50", v)
	assert.True(t, paced)
	assert.Equal(t, 50, debug.SetGCPercent(100))
	t.Setenv("GOGC", "200")
	v, paced = setGCPercent()
	assert.Equal(t, "200", v)
	assert.False(t, paced, "$GOGC set: the agent leaves GOGC alone")
	assert.Equal(t, 100, debug.SetGCPercent(100), "$GOGC is the runtime's own")
}

// TestFetchWIT runs the agent with -wit-svids against a server that signs
// WIT-SVIDs: api fetch wit prints each one's ID, expiry and token (never
// its key), as text or JSON; TestRunEndToEnd's agent, without
// -wit-svids, has it say so.
func TestFetchWIT(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: nodetest.TrustDomain, WITKeys: true})
	require.NoError(t, err)
	ns := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m})
	s := &server{NodeServer: ns, bundle: bundleFile(t, ns.CA)}
	socket := socketPath(t)
	cfg := writeFile(t, "agent.json", `{"workload_attestors": {"unix": {"skip_hash": true}}}`)
	r := startRun(t, "-config", cfg, "-trust-domain", "example.org", "-server", s.Addr, "-trust-bundle", s.bundle,
		"-join-token", s.Token(t), "-socket", socket, "-data-dir", filepath.Join(t.TempDir(), "data"), "-wit-svids")
	r.waitFor(t, "the agent to start", func() bool { return r.logs.Contains("agent started") })
	id := s.Register(t, s.agentID(t), "/web").SPIFFEID

	var out string
	r.waitFor(t, "the WIT-SVID", func() bool {
		var code int
		code, out, _ = cli(t, "api", "fetch", "wit", "-socket", socket, "-timeout", "2s")
		return code == ExitOK
	})
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, 2, out)
	assert.Regexp(t, `^`+regexp.QuoteMeta(id.String())+` \(expires \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$`, lines[0])
	svid, err := witsvid.ParseInsecure(lines[1])
	require.NoError(t, err)
	assert.Equal(t, id, svid.ID)
	assert.NotContains(t, out, `"d"`, "no private key")

	code, out, stderr := cli(t, "api", "fetch", "wit", "-socket", socket, "-spiffe-id", id.String(), "-output", "json")
	require.Equal(t, ExitOK, code, stderr)
	var j struct {
		SVIDs []struct {
			SPIFFEID  string    `json:"spiffe_id"`
			SVID      string    `json:"svid"`
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"svids"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &j), out)
	require.Len(t, j.SVIDs, 1)
	assert.Equal(t, id.String(), j.SVIDs[0].SPIFFEID)
	svid, err = witsvid.ParseInsecure(j.SVIDs[0].SVID)
	require.NoError(t, err)
	assert.Equal(t, svid.Expiry, j.SVIDs[0].ExpiresAt)

	code, _, stderr = cli(t, "api", "fetch", "wit", "-socket", socket, "-spiffe-id", "spiffe://example.org/other")
	assert.Equal(t, ExitFailure, code)
	assert.Contains(t, stderr, "spiffe-agent api fetch wit: ")
	code, _, stderr = cli(t, "api", "fetch", "wit", "-spiffe-id", "example.org/web")
	assert.Equal(t, ExitUsage, code)
	assert.Contains(t, stderr, "for flag -spiffe-id: ")
}
