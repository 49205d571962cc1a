package partition_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/registry"
)

func TestMain(m *testing.M) { progtest.Main(m) }

// The environment variables of the long mode (see the package
// documentation and docs/RELIABILITY.md).
const (
	longEnv = "SPIFFEKIT_LONG"
	runsEnv = "SPIFFEKIT_PARTITION_RUNS"
)

// scale is how long the SVIDs live, how long a cut lasts and how many
// times each case runs.
type scale struct {
	// agentTTL is the lifetime of agent SVIDs; workload SVIDs live twice
	// as long, so that what a cut of less than agentTTL leaves them is
	// more than what it leaves the agent's.
	agentTTL time.Duration
	// cut is how long a partition lasts: more than half of agentTTL, so
	// that the agent's renewal falls inside it.
	cut time.Duration
	// rounds is how many times each case runs in one test.
	rounds int
}

// scaleOf returns the short scale of the normal suite, or the long one
// with SPIFFEKIT_LONG=1; SPIFFEKIT_PARTITION_RUNS=N sets the rounds.
func scaleOf(t *testing.T) scale {
	t.Helper()
	s := scale{agentTTL: 20 * time.Second, cut: 12 * time.Second, rounds: 1}
	if os.Getenv(longEnv) == "1" {
		s = scale{agentTTL: 2 * time.Minute, cut: 75 * time.Second, rounds: 10}
	}
	if v := os.Getenv(runsEnv); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, runsEnv)
		require.Positive(t, n, runsEnv)
		s.rounds = n
	}
	return s
}

// report logs a result line, which scripts/reliability collects for
// docs/RELIABILITY.md.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("RESULT %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// uid is the selector of the test process, the workload of every entry.
var uid = "unix:uid:" + strconv.Itoa(os.Getuid())

// serverEnv returns an Env whose server runs on node n of a lab, with the
// SVID lifetimes of s and extraServerArgs.
func serverEnv(t *testing.T, n *node, s scale, extraServerArgs ...string) *progtest.Env {
	t.Helper()
	args := append([]string{"-bind", n.hostPort(8081),
		"-agent-svid-ttl", s.agentTTL.String(), "-x509-svid-ttl", (2 * s.agentTTL).String()}, extraServerArgs...)
	e := progtest.NewEnv(t, args...)
	e.Bind = n.hostPort(8081)
	e.ServerWrap = n.command()
	return e
}

// runAgentOn has e start its agent on node n, logging JSON, which
// agentSVIDs reads.
func runAgentOn(e *progtest.Env, n *node) {
	e.AgentWrap = n.command("env", "SPIFFE_AGENT_LOG_FORMAT=json")
}

// svidEvent is the agent getting an SVID of its own: at attestation or
// renewal.
type svidEvent struct {
	at, notAfter time.Time
}

// agentSVIDs reads from an agent's JSON log when it got each SVID of its
// own and when that SVID expires.
func agentSVIDs(t *testing.T, agent *progtest.Proc) []svidEvent {
	t.Helper()
	var events []svidEvent
	sc := bufio.NewScanner(strings.NewReader(agent.Output()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Time     time.Time `json:"time"`
			Msg      string    `json:"msg"`
			NotAfter time.Time `json:"not_after"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		switch line.Msg {
		case "attested", "agent SVID renewed", "reusing the saved agent SVID":
			events = append(events, svidEvent{at: line.Time, notAfter: line.NotAfter})
		}
	}
	return events
}

// checkAgentSVIDs fails the test if the agent's own SVID ever expired
// before the next one replaced it, and returns how many renewals there
// were.
func checkAgentSVIDs(t *testing.T, agent *progtest.Proc) int {
	t.Helper()
	events := agentSVIDs(t, agent)
	require.NotEmpty(t, events, "the agent logged no SVID of its own")
	for i := 1; i < len(events); i++ {
		if !events[i].at.Before(events[i-1].notAfter) {
			t.Errorf("the agent SVID expired at %s and was replaced only at %s", events[i-1].notAfter, events[i].at)
		}
	}
	if last := events[len(events)-1]; !time.Now().Before(last.notAfter) {
		t.Errorf("the agent SVID expired at %s and was not replaced", last.notAfter)
	}
	return len(events) - 1
}

// renewals returns how many times the agent renewed its SVID so far.
func renewals(t *testing.T, agent *progtest.Proc) int {
	return max(len(agentSVIDs(t, agent))-1, 0)
}

// TestPartitions runs the cases at once, each in a lab of its own, and
// checks for leaked goroutines once they all ended: they spend most of
// their time waiting for lifetimes to run out, not working. Under the race
// detector it skips, saying so.
func TestPartitions(t *testing.T) {
	if progtest.RaceDetector {
		// TestLab checks the lab's own code under the race detector.
		t.Skip("drives processes built without the race detector; runs in the test pass without -race")
	}
	t.Cleanup(leaktest.Check(t))
	cases := map[string]func(*testing.T){
		"AgentCutOffFromServer":      agentCutOffFromServer,
		"ServerCutOffFromPostgreSQL": serverCutOffFromPostgreSQL,
		"SlowLossyLink":              slowLossyLink,
	}
	var wg sync.WaitGroup
	for name, f := range cases {
		wg.Go(func() { t.Run(name, f) })
	}
	wg.Wait()
}

// agentCutOffFromServer cuts an agent off from its only server for
// longer than half the agent SVID's lifetime, starting as soon as the
// agent renewed its SVID (while it reconnects with the new one), so that
// the next renewal, and that of a workload SVID of the same lifetime
// minted at the same time, fall inside the cut. An entry is created
// through the server while the cut lasts. After the heal, the agent must
// re-sync and renew by itself: the entry reaches the workload, the agent
// SVID and the workload's SVID are renewed, and no SVID expired while a
// path worked.
func agentCutOffFromServer(t *testing.T) {
	s := scaleOf(t)
	l := newLab(t)
	server, agentNode := l.addNode("server"), l.addNode("agent")
	st := serverEnv(t, server, s)
	runAgentOn(st, agentNode)
	srv := st.StartServer()
	agent := st.StartAgent(st.Token())
	agentID := st.AgentID()
	// Its SVID lives as long as the agent's, and is minted when the agent
	// attested: both are renewed at about the same time.
	const base = "spiffe://example.org/base"
	st.Entry(agentID, base, uid, "-x509-ttl", s.agentTTL.String())
	written := []string{base}
	progtest.WaitFor(t, "the agent's Workload API socket", func() bool { return progtest.Exists(st.APISock) }, srv, agent)
	w := watchWorkload(t, st.APISock)
	progtest.WaitFor(t, "the workload's first SVID", func() bool { return w.has(base) }, srv, agent)

	var recoveries []time.Duration
	for round := range s.rounds {
		before := renewals(t, agent)
		progtest.WaitWithin(t, s.agentTTL, "an agent SVID renewal", func() bool { return renewals(t, agent) > before }, srv, agent)
		w.down()
		l.cut(server, agentNode)
		cutAt := time.Now()
		minted := w.minted(base)
		// Written through the server, whose admin socket the cut leaves
		// alone: it must reach the workload after the heal.
		during := fmt.Sprintf("spiffe://example.org/during-cut-%d", round)
		st.Entry(agentID, during, uid)
		written = append(written, during)
		time.Sleep(s.cut - time.Since(cutAt))
		l.heal(server, agentNode)
		w.up()
		healedAt := time.Now()

		// Each wait is logged with how long after the heal it ended.
		for _, wait := range []struct {
			what string
			f    func() bool
		}{
			{"the entry written during the cut to reach the workload", func() bool { return w.has(during) }},
			{"the agent to renew its SVID", func() bool { return renewals(t, agent) > before+1 }},
			{"the workload's SVID of " + base + " to be renewed", func() bool { return w.minted(base) > minted }},
			{"the workload to hold no expired SVID", func() bool { return len(w.expired()) == 0 }},
		} {
			progtest.WaitWithin(t, s.agentTTL, wait.what+" after the heal", wait.f, srv, agent)
			t.Logf("round %d: %s: %s after the heal", round, wait.what, time.Since(healedAt).Round(time.Millisecond))
		}
		recoveries = append(recoveries, time.Since(healedAt).Round(time.Millisecond))
	}
	lost := w.missing(written)
	w.stop()
	n := checkAgentSVIDs(t, agent)
	updates, errs := w.stats()
	checkStored(t, st, written, nil)
	report(t, "%d cuts of %s (agent SVID TTL %s): agent SVID renewed %d times, the workload saw %d updates and %d stream errors, the agent recovered %v after the heals; entries lost: %d of %d",
		s.rounds, s.cut, s.agentTTL, n, updates, errs, recoveries, len(lost), len(written))
	require.Empty(t, lost, "entries whose SVID the workload does not hold at the end")
}

// checkStored fails the test unless the server of e lists every entry of
// written once, and no other entry but those of maybe (writes whose
// outcome the writer was not told): it returns how many of maybe are
// stored.
func checkStored(t *testing.T, e *progtest.Env, written, maybe []string) int {
	t.Helper()
	c := admin.Dial(e.AdminSock)
	defer c.Close()
	entries, err := c.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	count := map[string]int{}
	for _, en := range entries {
		count[en.SPIFFEID.String()]++
	}
	for _, id := range written {
		assert.Equal(t, 1, count[id], "entries stored of %s", id)
		delete(count, id)
	}
	stored := 0
	for _, id := range maybe {
		assert.LessOrEqual(t, count[id], 1, "entries stored of %s", id)
		stored += count[id]
		delete(count, id)
	}
	assert.Empty(t, count, "entries stored that nobody wrote")
	return stored
}
