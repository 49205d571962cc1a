package nodebench

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// idleQueries starts agents real agents with entries entries each against
// a server with the given poll interval (zero: the default), waits until
// all have synced and pre-minted, then counts the datastore queries the
// server makes while they stay idle for window.
func idleQueries(tb testing.TB, agents, entries int, poll, window time.Duration) (queryCounts, time.Duration) {
	tb.Helper()
	e := newEnv(tb, envConfig{PollInterval: poll})
	minted := make([]*mintCounter, agents)
	for i := range agents {
		minted[i] = &mintCounter{}
		a := e.newAgent(tb, minted[i])
		createEntries(tb, e.store, a.ID(), "/idle"+strconv.Itoa(i), entries, ourUID)
		e.waitIndexed(tb)
		waitSynced(tb, a, 30*time.Second)
		waitFor(tb, time.Minute, "the agent's SVIDs pre-minted", func() bool { return minted[i].n.Load() >= int64(entries) })
	}
	before := e.counts()
	start := time.Now()
	time.Sleep(window)
	q := e.counts().sub(before)
	return q, time.Since(start)
}

func TestIdleAgentsMakeNoQueries(t *testing.T) {
	const poll = 50 * time.Millisecond
	q, took := idleQueries(t, 3, 2, poll, 500*time.Millisecond)
	// The server's own periodic reads only: the change feed and the agent
	// records at each poll; no reads on behalf of an agent.
	assert.Zero(t, q.List)
	assert.Zero(t, q.Get)
	assert.Zero(t, q.GetAgent)
	assert.Zero(t, q.PutAgent)
	assert.Positive(t, q.Changes)
	// A ticker fires at most once per period (plus one tick it kept), so
	// these bounds hold however slow the machine is.
	assert.LessOrEqual(t, q.Changes, int64(took/poll)+2, "one change feed read per poll, not per agent")
	assert.LessOrEqual(t, q.ListAgents, int64(took/poll)+2, "one agent list per poll, not per agent")
}

// BenchmarkIdleQueries counts the datastore queries the server makes while
// its agents are idle, with the server's default poll (the change feed and
// the agent records read every 30 s, besides when the store tells of a
// write), over a 10 s window after every agent has synced and pre-minted. Each metric is per second for the
// whole server; queries/s/agent is the total divided by the number of
// agents. Run with -benchtime=1x.
func BenchmarkIdleQueries(b *testing.B) {
	const window = 10 * time.Second
	for _, agents := range []int{1, 10} {
		b.Run("agents="+strconv.Itoa(agents), func(b *testing.B) {
			var sum queryCounts
			for range b.N {
				q, _ := idleQueries(b, agents, 10, 0, window)
				sum = queryCounts{
					Head: sum.Head + q.Head, Changes: sum.Changes + q.Changes, List: sum.List + q.List, Get: sum.Get + q.Get,
					ListAgents: sum.ListAgents + q.ListAgents, GetAgent: sum.GetAgent + q.GetAgent, PutAgent: sum.PutAgent + q.PutAgent,
				}
			}
			secs := window.Seconds() * float64(b.N)
			total := sum.Head + sum.Changes + sum.List + sum.Get + sum.ListAgents + sum.GetAgent + sum.PutAgent
			b.ReportMetric(float64(sum.Head)/secs, "head/s")
			b.ReportMetric(float64(sum.Changes)/secs, "changes/s")
			b.ReportMetric(float64(sum.List)/secs, "list/s")
			b.ReportMetric(float64(sum.Get)/secs, "get/s")
			b.ReportMetric(float64(sum.ListAgents)/secs, "listagents/s")
			b.ReportMetric(float64(sum.GetAgent)/secs, "getagent/s")
			b.ReportMetric(float64(sum.PutAgent)/secs, "putagent/s")
			b.ReportMetric(float64(total)/secs/float64(agents), "queries/s/agent")
		})
	}
}
