package agent_test

import (
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
)

// observed is an issuer.Observer and an endpoint.Observer that counts
// what it is told by line: "signed x509 ok", "attested ok", "answered
// FetchX509SVID OK".
type observed struct {
	mu     sync.Mutex
	counts map[string]int
}

func (o *observed) add(l string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.counts == nil {
		o.counts = map[string]int{}
	}
	o.counts[l]++
}

func (o *observed) count(l string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.counts[l]
}

func (o *observed) snapshot() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.counts)
}

func (o *observed) Signed(svidType string, n, failed int, _ time.Duration) {
	o.add(fmt.Sprintf("signed %s %d/%d", svidType, n-failed, n))
}
func (o *observed) WorkloadAttested(outcome string, _ time.Duration) { o.add("attested " + outcome) }
func (o *observed) Answered(method string, code codes.Code, _ time.Duration) {
	o.add(fmt.Sprintf("answered %s %s", method, code))
}
func (o *observed) StreamOpened(method string)               { o.add("opened " + method) }
func (o *observed) StreamClosed(method string, _ codes.Code) { o.add("closed " + method) }

// waitPreMinted waits until obs, an agent's IssuerObserver, was told that
// the agent had the X509-SVID of one entry signed ahead of need (the
// default, without Config.MintOnDemand): the entry is then indexed by what
// the agent's Workload API serves, and a workload that asks gets its SVID.
// It asks the Workload API nothing, so that a test may count the calls. The
// agent holding the entry (Stats().Entries, nodetest.Agent.WaitEntries) is
// not enough: the agent counts an entry as it receives it, before its
// Workload API serves it, and a workload that asks meanwhile is told it
// has no identity (or, before the agent's first sync, to retry).
func waitPreMinted(t *testing.T, obs *observed) {
	t.Helper()
	require.Eventually(t, func() bool { return obs.count("signed x509 1/1") > 0 }, nodetest.Timeout, 5*time.Millisecond,
		"the agent has an X509-SVID signed: %v", obs.snapshot())
}

// TestObservers: the agent hands Config.IssuerObserver and
// Config.APIObserver to its issuer and its Workload API server.
func TestObservers(t *testing.T) {
	s := startServer(t)
	obs := &observed{}
	cfg := s.AgentConfig(t)
	cfg.IssuerObserver, cfg.APIObserver = obs, obs
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	waitPreMinted(t, obs)
	assert.Equal(t, web.SPIFFEID, a.FetchX509SVID(t).ID)

	assert.Equal(t, 1, obs.count("attested ok"), "%v", obs.snapshot())
	assert.Equal(t, 1, obs.count("opened FetchX509SVID"), "%v", obs.snapshot())
	// The stream is answered once the server sees it end, after the
	// client has its SVID and hangs up.
	require.Eventually(t, func() bool { return obs.count("answered FetchX509SVID OK") > 0 }, 20*time.Second, 5*time.Millisecond, "the stream's end observed")
	assert.Equal(t, 1, obs.count("answered FetchX509SVID OK"), "%v", obs.snapshot())
}
