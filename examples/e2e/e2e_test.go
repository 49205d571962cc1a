package e2e_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/mysqltest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

func TestMain(m *testing.M) { progtest.Main(m) }

var entryID = regexp.MustCompile(`Entry ID\s*:\s*(\S+)`)

// TestServerAndAgent walks the documented command line: server, token,
// entry, agent, workload fetch, SVID rotation, eviction, and a second
// user.
func TestServerAndAgent(t *testing.T) {
	serverBin, agentBin := progtest.Build(t)
	dir := progtest.ShortTemp(t)
	adminSock := filepath.Join(dir, "admin.sock")
	apiSock := filepath.Join(dir, "agent", "api.sock")
	bind := progtest.FreePort(t)

	srv := progtest.Start(t, serverBin, "run", "-trust-domain", "example.org", "-data-dir", filepath.Join(dir, "server"),
		"-bind", bind, "-admin-socket", adminSock, "-x509-svid-ttl", "6s", "-agent-svid-ttl", "8s", "-ca-ttl", "1h")
	progtest.WaitFor(t, "the server to be ready", func() bool { return srv.Ready() }, srv)

	// The trust bundle an operator hands to agents.
	bundlePEM := progtest.Must(t, serverBin, "bundle", "show", "-admin-socket", adminSock)
	require.Contains(t, bundlePEM, "BEGIN CERTIFICATE")
	bundleFile := filepath.Join(dir, "bundle.pem")
	require.NoError(t, os.WriteFile(bundleFile, []byte(bundlePEM), 0o644))
	doc := progtest.Must(t, serverBin, "bundle", "show", "-admin-socket", adminSock, "-format", "spiffe")
	assert.Contains(t, doc, `"keys"`)

	token := strings.TrimSpace(progtest.Must(t, serverBin, "token", "generate", "-admin-socket", adminSock, "-ttl", "10m"))
	require.NotEmpty(t, token)

	agent := progtest.Start(t, agentBin, "run", "-trust-domain", "example.org", "-server", bind, "-trust-bundle", bundleFile,
		"-join-token", token, "-socket", apiSock, "-data-dir", filepath.Join(dir, "agent-data"))
	progtest.WaitFor(t, "the agent to attest", func() bool {
		out, _, code := progtest.Run(t, nil, serverBin, "agent", "list", "-admin-socket", adminSock)
		return code == 0 && strings.Contains(out, "/spiffekit/agent/join_token/")
	}, srv, agent)
	agents := progtest.Must(t, serverBin, "agent", "list", "-admin-socket", adminSock)
	agentID := regexp.MustCompile(`spiffe://example\.org/spiffekit/agent/join_token/[0-9a-f]+`).FindString(agents)
	require.NotEmpty(t, agentID, agents)

	uid := strconv.Itoa(os.Getuid())
	created := progtest.Must(t, serverBin, "entry", "create", "-admin-socket", adminSock, "-parent-id", agentID,
		"-spiffe-id", "spiffe://example.org/web", "-selector", "unix:uid:"+uid)
	m := entryID.FindStringSubmatch(created)
	require.NotNil(t, m, created)
	shown := progtest.Must(t, serverBin, "entry", "show", "-admin-socket", adminSock, "-entry-id", m[1])
	assert.Contains(t, shown, "spiffe://example.org/web")

	// The workload gets its SVID through the agent.
	progtest.WaitFor(t, "the agent's Workload API socket", func() bool { return progtest.Exists(apiSock) }, srv, agent)
	var fetched string
	progtest.WaitFor(t, "the workload's SVID", func() bool {
		out, _, code := progtest.Run(t, nil, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		fetched = out
		return code == 0 && strings.Contains(out, "spiffe://example.org/web")
	})
	jwt := progtest.Must(t, agentBin, "api", "fetch", "jwt", "-audience", "db", "-socket", apiSock)
	assert.Contains(t, jwt, "spiffe://example.org/web")
	assert.Regexp(t, `ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`, jwt)
	progtest.Must(t, agentBin, "healthcheck", "-socket", apiSock)

	// Rotation: the SVID (6 s) is replaced at half its life, and the
	// agent's own SVID (8 s) is renewed; the workload keeps being served.
	serial := serialOf(fetched)
	require.NotEmpty(t, serial, fetched)
	progtest.WaitFor(t, "a rotated SVID", func() bool {
		out, _, code := progtest.Run(t, nil, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		return code == 0 && serialOf(out) != "" && serialOf(out) != serial
	})
	progtest.WaitFor(t, "the agent SVID renewal", func() bool { return strings.Contains(agent.Output(), "agent SVID renewed") })
	// Routine rotations and renewals are no incident: nothing above Info.
	assert.NotRegexp(t, `level=(WARN|ERROR)`, agent.Output())
	assert.NotRegexp(t, `level=(WARN|ERROR)`, srv.Output())

	// A second user: refused by the admin socket, and holds no identity.
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	if os.Getuid() == 0 {
		_, errOut, code := progtest.Run(t, nobody, serverBin, "token", "generate", "-admin-socket", adminSock)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut, "permission denied")
		require.NoError(t, os.Chmod(filepath.Dir(apiSock), 0o755))
		_, errOut, code = progtest.Run(t, nobody, agentBin, "api", "fetch", "x509", "-socket", apiSock)
		assert.Equal(t, 1, code)
		assert.Contains(t, strings.ToLower(errOut), "no identity")
	} else {
		t.Log("not root: the second-user checks need root to switch users; they run in CI")
	}

	// Eviction: the agent loses its access; its workload keeps the SVID it
	// holds until it expires.
	progtest.Must(t, serverBin, "agent", "evict", "-admin-socket", adminSock, "-spiffe-id", agentID)
	progtest.WaitFor(t, "the evicted agent to be refused", func() bool {
		return strings.Contains(agent.Output(), "evicted") || strings.Contains(agent.Output(), "refused")
	})
	// A spent join token cannot bring it back.
	out := progtest.Must(t, serverBin, "agent", "list", "-admin-socket", adminSock)
	assert.NotContains(t, out, agentID)

	// Probes: the server's healthcheck, through its admin socket.
	assert.Equal(t, "healthy: the server of example.org answered\n", progtest.Must(t, serverBin, "healthcheck", "-admin-socket", adminSock))

	// Graceful shutdown: both exit 0 on SIGTERM, and say why they go.
	assert.Equal(t, 0, agent.Stop(t, syscall.SIGTERM), agent.Output())
	assert.Equal(t, 0, srv.Stop(t, syscall.SIGTERM), srv.Output())
	assert.Contains(t, srv.Output(), `msg="shutting down" cause="terminated signal received"`)
	assert.Contains(t, srv.Output(), `msg="server stopped"`)
	assert.Contains(t, agent.Output(), `msg="shutting down" cause="terminated signal received"`)
	_, _, code := progtest.Run(t, nil, serverBin, "healthcheck", "-admin-socket", adminSock)
	assert.Equal(t, 1, code, "a server that is gone is unhealthy")
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

// TestServerKilledWhileAgentRuns: the server dies (SIGKILL) and comes back;
// the workload is served throughout and the agent syncs again.
func TestServerKilledWhileAgentRuns(t *testing.T) {
	e := progtest.NewEnv(t)
	srv := e.StartServer()
	agent := e.StartAgent(e.Token())
	id := e.AgentID()
	uid := strconv.Itoa(os.Getuid())
	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+uid)
	progtest.WaitFor(t, "the first SVID", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/web") })

	count, stop := e.Load()
	srv.Stop(t, syscall.SIGKILL)
	time.Sleep(time.Second) // the server stays away for a while
	e.StartServer()
	e.Entry(id, "spiffe://example.org/db", "unix:gid:"+strconv.Itoa(os.Getgid()))
	progtest.WaitFor(t, "the agent to sync again", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/db") })
	assert.Regexp(t, `level=INFO msg="reconnected to the server" outage=`, agent.Output(), "the agent says the outage is over")
	progtest.WaitFor(t, "50 fetches under load", func() bool { return count() >= 50 })
	total, failed := stop()
	t.Logf("%d fetches while the server was killed and restarted, %d failed", total, failed)
	assert.Positive(t, total)
	assert.Zero(t, failed, "no workload fetch fails while the server is away")
}

// TestAgentRestarted: a restarted agent reuses its saved SVID; its spent
// join token is never accepted again.
func TestAgentRestarted(t *testing.T) {
	e := progtest.NewEnv(t)
	e.StartServer()
	tok := e.Token()
	a := e.StartAgent(tok)
	id := e.AgentID()
	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the first SVID", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/web") })
	a.Stop(t, syscall.SIGKILL)

	b := e.StartAgent(tok)
	progtest.WaitFor(t, "the restarted agent to serve", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/web") })
	assert.Contains(t, b.Output(), "reusing the saved agent SVID")
	assert.Equal(t, id, e.AgentID(), "same agent, no second attestation")

	// Without its data directory, the spent token is refused.
	_, errOut, code := progtest.Run(t, nil, e.AgentBin, "run", "-trust-domain", "example.org", "-server", e.Bind,
		"-trust-bundle", e.BundleFile, "-join-token", tok, "-socket", filepath.Join(e.Dir, "other.sock"),
		"-data-dir", filepath.Join(e.Dir, "other-data"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "refused")
}

// TestHighAvailability: two servers share one PostgreSQL database, or one
// MariaDB database (-datastore mysql://...); the agent knows both. The one
// it uses is killed under load: no workload fetch fails, and entries
// created through the other reach the agent.
func TestHighAvailability(t *testing.T) {
	t.Run("PostgreSQL", func(t *testing.T) { testHighAvailability(t, pgtest.New(t)) })
	t.Run("MySQL", func(t *testing.T) { testHighAvailability(t, "mysql://"+mysqltest.New(t)) })
}

func testHighAvailability(t *testing.T, dsn string) {
	e := progtest.NewEnv(t, "-datastore", dsn)
	other := progtest.NewEnv(t, "-datastore", dsn)
	other.Dir, other.BundleFile = e.Dir, e.BundleFile
	other.ServerArgs = []string{"run", "-trust-domain", "example.org", "-data-dir", filepath.Join(e.Dir, "server2"),
		"-bind", other.Bind, "-admin-socket", other.AdminSock, "-datastore", dsn}
	first := e.StartServer()
	other.StartServer()
	// Both CAs are in the bundle the agent is given.
	progtest.WaitFor(t, "both CAs in the bundle", func() bool {
		out := progtest.Must(t, e.ServerBin, "bundle", "show", "-admin-socket", e.AdminSock)
		return strings.Count(out, "BEGIN CERTIFICATE") == 2
	})
	require.NoError(t, os.WriteFile(e.BundleFile, []byte(progtest.Must(t, e.ServerBin, "bundle", "show", "-admin-socket", e.AdminSock)), 0o644))

	// A token made on the second server admits the agent.
	e.StartAgent(other.Token(), e.Bind, other.Bind)
	id := e.AgentID()
	e.Entry(id, "spiffe://example.org/web", "unix:uid:"+strconv.Itoa(os.Getuid()))
	progtest.WaitFor(t, "the first SVID", func() bool { out, code := e.Fetch(); return code == 0 && strings.Contains(out, "/web") })

	count, stop := e.Load()
	progtest.WaitFor(t, "load before the failure", func() bool { return count() >= 10 })
	first.Stop(t, syscall.SIGKILL)
	other.Entry(id, "spiffe://example.org/db", "unix:gid:"+strconv.Itoa(os.Getgid()))
	progtest.WaitFor(t, "the entry made on the surviving server", func() bool {
		out, code := e.Fetch()
		return code == 0 && strings.Contains(out, "/db")
	})
	progtest.WaitFor(t, "50 fetches under load", func() bool { return count() >= 50 })
	total, failed := stop()
	t.Logf("%d fetches while one of two servers was killed, %d failed", total, failed)
	assert.Positive(t, total)
	assert.Zero(t, failed)
}
