package partition_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/progtest"
)

// slowLossyLink puts 200 ms of delay each way and 10% packet loss on
// the link between an agent and its server, from before the agent
// attests: attestation, sync, renewals of the agent SVID and of the
// workload's SVIDs all cross it, and the workload never holds an expired
// SVID; entries written meanwhile reach the workload.
func slowLossyLink(t *testing.T) {
	s := scaleOf(t)
	l := newLab(t)
	server, agentNode := l.addNode("server"), l.addNode("agent")
	l.slow(server, agentNode, 200*time.Millisecond, 0.1)
	st := serverEnv(t, server, s)
	runAgentOn(st, agentNode)
	srv := st.StartServer()
	agent := st.StartAgent(st.Token())
	procs := []*progtest.Proc{srv, agent}
	agentID := st.AgentID()
	const base = "spiffe://example.org/base"
	st.Entry(agentID, base, uid, "-x509-ttl", s.agentTTL.String())
	written := []string{base}
	progtest.WaitWithin(t, s.agentTTL, "the agent's Workload API socket", func() bool { return progtest.Exists(st.APISock) }, procs...)
	// A path to the server works throughout: the workload never goes down.
	w := watchWorkload(t, st.APISock)
	// Over this link the first connections can take several of TCP's
	// retransmission timeouts (the first sync has taken 13 s of a 20 s
	// SVID's life): allow two lifetimes for the first SVID. A signing call
	// in flight when the agent renews its own SVID finishes on the old
	// connection.
	progtest.WaitWithin(t, 2*s.agentTTL, "the workload's first SVID", func() bool { return w.has(base) }, procs...)

	rounds := 2 * s.rounds
	for round := range rounds {
		before, minted := renewals(t, agent), w.minted(base)
		id := fmt.Sprintf("spiffe://example.org/slow-%d", round)
		st.Entry(agentID, id, uid)
		written = append(written, id)
		progtest.WaitWithin(t, s.agentTTL, "the entry "+id+" to reach the workload over the slow link", func() bool { return w.has(id) }, procs...)
		progtest.WaitWithin(t, s.agentTTL, "an agent SVID renewal over the slow link", func() bool { return renewals(t, agent) > before }, procs...)
		progtest.WaitWithin(t, s.agentTTL, "the workload's SVID of "+base+" to be renewed over the slow link", func() bool { return w.minted(base) > minted }, procs...)
	}
	lost := w.missing(written)
	w.stop()
	n := checkAgentSVIDs(t, agent)
	checkStored(t, st, written, nil)
	forwarded, dropped := l.counts(server, agentNode)
	updates, errs := w.stats()
	report(t, "%d rounds over a link with 200ms delay and 10%% loss (agent SVID TTL %s): agent SVID renewed %d times, the workload saw %d updates and %d stream errors; packets forwarded %d, dropped %d; entries lost: %d of %d",
		rounds, s.agentTTL, n, updates, errs, forwarded, dropped, len(lost), len(written))
	assert.Positive(t, dropped, "the link dropped no packet")
	require.Empty(t, lost, "entries whose SVID the workload does not hold at the end")
}
