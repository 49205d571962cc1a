package server_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
)

// nodeCounts is a nodeserver.Observer that counts what it is told, by
// "method code", "attestor outcome" and SVID type.
type nodeCounts struct {
	mu       sync.Mutex
	rpcs     map[string]int
	attested map[string]int
	signed   map[string]int
}

func newNodeCounts() *nodeCounts {
	return &nodeCounts{rpcs: map[string]int{}, attested: map[string]int{}, signed: map[string]int{}}
}

func (c *nodeCounts) RPC(method string, code codes.Code, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rpcs[method+" "+code.String()]++
}

func (c *nodeCounts) NodeAttested(attestor, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attested[attestor+" "+outcome]++
}

func (c *nodeCounts) Signed(svidType string, _ time.Duration, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.signed[svidType]++
	}
}

func (c *nodeCounts) get(m map[string]int, k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[k]
}

// TestStatsAndNodeObserver: the server's counts follow an agent attesting
// and an entry registered; Config.NodeObserver sees the node API at work.
func TestStatsAndNodeObserver(t *testing.T) {
	obs := newNodeCounts()
	s := start(t, server.Config{NodeObserver: obs})
	st := s.Stats()
	assert.Zero(t, st.Entries)
	assert.Zero(t, st.Agents)
	assert.Zero(t, st.HandshakesRefused)
	assert.Empty(t, st.Federation)
	require.False(t, st.CAExpiresAt.IsZero())
	assert.True(t, st.CAExpiresAt.After(time.Now()))
	assert.Equal(t, s.CA().X509Authority().Certificate().NotAfter, st.CAExpiresAt)

	a := nodetest.StartAgent(t, s.AgentConfig(t))
	web := s.Register(t, a.ID(), "/web")
	a.WaitEntries(t, 1)         // the entry is pushed to the agent
	a.WaitSVID(t, web.SPIFFEID) // and served: the agent holds an entry before it serves it
	require.Eventually(t, func() bool {
		st := s.Stats()
		return st.Entries == 1 && st.Agents == 1 && st.ConnectedAgents == 1
	}, 10*time.Second, 5*time.Millisecond, "%+v", s.Stats())

	assert.Equal(t, 1, obs.get(obs.attested, "join_token ok"))
	assert.Equal(t, 1, obs.get(obs.rpcs, "Attest OK"))
	assert.Equal(t, 1, obs.get(obs.signed, "agent"))
	assert.GreaterOrEqual(t, obs.get(obs.signed, "x509"), 1)
	assert.GreaterOrEqual(t, obs.get(obs.rpcs, "SignX509SVIDs OK"), 1)
}

// TestFederationStats counts the good and failed fetches of a
// relationship.
func TestFederationStats(t *testing.T) {
	f := newFakeEndpoint(t)
	good, _ := partnerDoc(t, 5, "partner-1")
	f.set("good", good)
	s := start(t, server.Config{
		FederationRefresh: 20 * time.Millisecond,
		FederationTimeout: 300 * time.Millisecond,
		Federation: []server.Relationship{{
			TrustDomain: partnerTD, URL: f.URL + "/bundle.json", Profile: server.ProfileHTTPSWeb, WebPKIRoots: f.roots,
		}},
	})
	fed := func() server.FederationStats {
		st := s.Stats()
		require.Len(t, st.Federation, 1)
		return st.Federation[0]
	}
	require.Eventually(t, func() bool { return fed().Fetches > 0 }, 15*time.Second, 5*time.Millisecond)
	got := fed()
	assert.Equal(t, partnerTD, got.TrustDomain)
	assert.False(t, got.LastFetch.IsZero())

	f.set("status", nil)
	require.Eventually(t, func() bool { return fed().Failures > 0 }, 15*time.Second, 5*time.Millisecond)
	assert.GreaterOrEqual(t, fed().Fetches, got.Fetches)
}
