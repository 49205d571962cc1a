package partition_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// database gives the test a new database of the package's PostgreSQL
// server (see pgtest), reached from the lab at node n: the DSN it returns
// names n's address, where a relay joins each connection to the server,
// so that what happens to n's links happens to the servers' connections.
func database(t *testing.T, n *node) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(pgtest.New(t))
	require.NoError(t, err)
	network, target := "tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		network, target = "unix", filepath.Join(cfg.Host, fmt.Sprintf(".s.PGSQL.%d", cfg.Port))
	}
	n.relay(5432, network, target)
	dsn := fmt.Sprintf("host=%s port=5432 user=%s dbname=%s sslmode=disable", n.addr, cfg.User, cfg.Database)
	if cfg.Password != "" {
		dsn += " password='" + strings.ReplaceAll(cfg.Password, "'", `\'`) + "'"
	}
	return dsn
}

// serverCutOffFromPostgreSQL runs two servers on one PostgreSQL
// database and an agent that knows both and uses the first. The first
// server is cut off from the database for longer than half the agent
// SVID's lifetime: the agent must keep its SVIDs through the second
// server, entries written through the second reach the workload, the cut
// server refuses writes with a clear error, and after the heal it serves
// again and every entry written is there.
func serverCutOffFromPostgreSQL(t *testing.T) {
	s := scaleOf(t)
	l := newLab(t)
	pg := l.addNode("postgres")
	dsn := database(t, pg)
	n1, n2, agentNode := l.addNode("server1"), l.addNode("server2"), l.addNode("agent")
	e1 := serverEnv(t, n1, s, "-datastore", dsn)
	e2 := serverEnv(t, n2, s, "-datastore", dsn)
	runAgentOn(e1, agentNode)
	srv1, srv2 := e1.StartServer(), e2.StartServer()
	progtest.WaitFor(t, "both CAs in the bundle", func() bool {
		out := progtest.Must(t, e1.ServerBin, "bundle", "show", "-admin-socket", e1.AdminSock)
		return strings.Count(out, "BEGIN CERTIFICATE") == 2
	}, srv1, srv2)
	require.NoError(t, os.WriteFile(e1.BundleFile, []byte(progtest.Must(t, e1.ServerBin, "bundle", "show", "-admin-socket", e1.AdminSock)), 0o644))
	agent := e1.StartAgent(e1.Token(), e1.Bind, e2.Bind)
	agentID := e1.AgentID()
	const base = "spiffe://example.org/base"
	e1.Entry(agentID, base, uid, "-x509-ttl", s.agentTTL.String())
	written := []string{base}
	procs := []*progtest.Proc{srv1, srv2, agent}
	progtest.WaitFor(t, "the agent's Workload API socket", func() bool { return progtest.Exists(e1.APISock) }, procs...)
	// A path to a server works throughout: the workload never goes down.
	w := watchWorkload(t, e1.APISock)
	progtest.WaitFor(t, "the workload's first SVID", func() bool { return w.has(base) }, procs...)

	var refusals, maybe []string
	var failovers, recoveries []time.Duration
	refusedInTime := 0
	envs, nodes := []*progtest.Env{e1, e2}, []*node{n1, n2}
	for round := range s.rounds {
		// The server cut off is the one the agent uses: the first, then
		// the one it moved to.
		cut, other := round%2, 1-round%2
		ce, oe := envs[cut], envs[other]
		before := renewals(t, agent)
		minted := w.minted(base)
		l.cut(nodes[cut], pg)
		cutAt := time.Now()
		// The cut server refuses a write, saying why, once its stores
		// did not answer in time: asked meanwhile.
		refusedID := fmt.Sprintf("spiffe://example.org/refused-%d", round)
		refused := make(chan string, 1)
		go func() {
			out, err := exec.CommandContext(t.Context(), ce.ServerBin, "entry", "create", "-admin-socket", ce.AdminSock,
				"-parent-id", agentID, "-spiffe-id", refusedID, "-selector", uid).CombinedOutput()
			refused <- fmt.Sprintf("%v: %s", err, bytes.TrimSpace(out))
		}()
		// Written through the other server: it reaches the workload while
		// the cut lasts, once the agent moved there.
		through := fmt.Sprintf("spiffe://example.org/through-server%d-%d", other+1, round)
		oe.Entry(agentID, through, uid)
		written = append(written, through)
		progtest.WaitWithin(t, s.agentTTL, "the entry written through the other server to reach the workload during the cut", func() bool { return w.has(through) }, procs...)
		failovers = append(failovers, time.Since(cutAt).Round(time.Millisecond))
		time.Sleep(max(s.cut-time.Since(cutAt), 0))
		progtest.WaitWithin(t, s.agentTTL, "the agent to renew its SVID during the cut", func() bool { return renewals(t, agent) > before }, procs...)
		progtest.WaitWithin(t, s.agentTTL, "the workload's SVID of "+base+" to be renewed during the cut", func() bool { return w.minted(base) > minted }, procs...)
		answer := <-refused
		if assert.Contains(t, answer, "did not answer within", "what the cut server answered a write") {
			refusedInTime++
		}
		refusals = append(refusals, answer)
		maybe = append(maybe, refusedID)
		l.heal(nodes[cut], pg)

		// The cut server serves again: a write through it reaches the
		// workload.
		after := fmt.Sprintf("spiffe://example.org/through-server%d-after-heal-%d", cut+1, round)
		healedAt := time.Now()
		progtest.WaitWithin(t, s.agentTTL, "a write through the cut server to succeed after the heal", func() bool {
			_, _, code := progtest.Run(t, nil, ce.ServerBin, "entry", "create", "-admin-socket", ce.AdminSock,
				"-parent-id", agentID, "-spiffe-id", after, "-selector", uid)
			return code == 0
		}, procs...)
		recoveries = append(recoveries, time.Since(healedAt).Round(time.Millisecond))
		written = append(written, after)
		progtest.WaitWithin(t, s.agentTTL, "the entry written through the cut server after the heal to reach the workload", func() bool { return w.has(after) }, procs...)
	}
	lost := w.missing(written)
	w.stop()
	n := checkAgentSVIDs(t, agent)
	updates, errs := w.stats()
	stored := checkStored(t, e2, written, maybe)
	t.Logf("what the cut server answered a write: %q", refusals)
	report(t, "%d cuts of %s or more between one of two servers and PostgreSQL (agent SVID TTL %s): the agent failed over %v after the cuts, the cut server took writes again %v after the heals; agent SVID renewed %d times, the workload saw %d updates and %d stream errors; entries lost: %d of %d; writes refused in time by the cut server: %d of %d (stored all the same: %d)",
		s.rounds, s.cut, s.agentTTL, failovers, recoveries, n, updates, errs, len(lost), len(written), refusedInTime, s.rounds, stored)
	require.Empty(t, lost, "entries whose SVID the workload does not hold at the end")
}
