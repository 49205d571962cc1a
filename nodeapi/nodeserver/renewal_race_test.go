package nodeserver_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
)

// pausingAgents is an agent store whose first update of a record that
// pause selects waits until released, after the server read the record it
// writes back.
type pausingAgents struct {
	registry.AgentStore
	pause   func(registry.Agent) bool
	first   atomic.Bool
	paused  chan struct{} // closed once that write waits
	release chan struct{}
}

func newPausingAgents(pause func(registry.Agent) bool) *pausingAgents {
	return &pausingAgents{pause: pause, paused: make(chan struct{}), release: make(chan struct{})}
}

func (p *pausingAgents) UpdateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	if p.pause(a) && p.first.CompareAndSwap(false, true) {
		close(p.paused)
		<-p.release
	}
	return p.AgentStore.UpdateAgent(ctx, a)
}

// retiring selects the write that retires an agent's previous serial,
// renewing the one that records a renewal.
func retiring(a registry.Agent) bool { return a.PreviousSerialNumber == "" }
func renewing(a registry.Agent) bool { return a.PreviousSerialNumber != "" }

// Property: an agent that renews while another of its calls retires the
// SVID before the one it uses (as an agent back from a partition does,
// renewing with an SVID it had not used yet) keeps the SVID the renewal
// gave it: the retirement, which read the record before the renewal wrote
// it, does not write the old serials back over the new ones.
func TestRenewalRacingTheRetirementOfThePreviousSVID(t *testing.T) {
	agents := newPausingAgents(retiring)
	e := newEnv(t, func(c *nodeserver.Config) {
		agents.AgentStore = c.Agents
		c.Agents = agents
	})
	first := e.attest(t, "node1")
	// Renewed, and not used yet: the record has the new serial and the
	// one before.
	key := newKey(t)
	svid, err := first.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)
	renewed := &agent{key: key, svid: svid}
	renewed.client, err = nodeapi.Dial(e.clientConfig(), renewed)
	require.NoError(t, err)
	defer renewed.client.Close()

	// A call with the renewed SVID retires the one before; its write waits.
	used := make(chan error, 1)
	go func() {
		_, err := renewed.client.SignJWTSVID(t.Context(), "x", []string{"db"})
		used <- err
	}()
	select {
	case <-agents.paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the retirement of the previous SVID did not reach the store")
	}
	// Meanwhile the agent renews again, with the same SVID.
	nextKey := newKey(t)
	type result struct {
		svid *nodeapi.AgentSVID
		err  error
	}
	renewal := make(chan result, 1)
	go func() {
		s, err := renewed.client.RenewAgent(t.Context(), nextKey)
		renewal <- result{s, err}
	}()
	var r result
	select {
	case r = <-renewal: // it did not wait for the retirement
		close(agents.release)
	case <-time.After(2 * time.Second): // it waits for the retirement
		close(agents.release)
		r = <-renewal
	}
	require.NoError(t, r.err)
	assert.ErrorContains(t, <-used, "not authorized", "authenticated, then refused for the entry")

	next := &agent{key: nextKey, svid: r.svid}
	next.client, err = nodeapi.Dial(e.clientConfig(), next)
	require.NoError(t, err)
	defer next.client.Close()
	_, err = next.client.SignJWTSVID(t.Context(), "x", []string{"db"})
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	assert.ErrorContains(t, err, "not authorized", "the SVID of the last renewal is accepted")
}

// Property: one SVID renews at most twice (its own renewal, then once
// more as the previous SVID, when the answer to the first was lost), also
// when the renewals come at once: a renewal that authenticated before
// two others wrote is refused as superseded when its turn comes.
func TestConcurrentRenewalsWithOneSVID(t *testing.T) {
	agents := newPausingAgents(renewing)
	e := newEnv(t, func(c *nodeserver.Config) {
		agents.AgentStore = c.Agents
		c.Agents = agents
	})
	a := e.attest(t, "node1")
	errs := make(chan error, 3)
	renew := func() {
		_, err := a.client.RenewAgent(t.Context(), newKey(t))
		errs <- err
	}
	go renew()
	select {
	case <-agents.paused:
	case <-time.After(10 * time.Second):
		t.Fatal("the first renewal did not reach the store")
	}
	go renew()
	go renew()
	time.Sleep(time.Second) // for both to authenticate, while the first waits
	close(agents.release)
	var ok, superseded int
	for range 3 {
		err := <-errs
		switch {
		case err == nil:
			ok++
		case status.Code(err) == codes.PermissionDenied:
			assert.ErrorContains(t, err, "no longer current")
			superseded++
		default:
			t.Errorf("a renewal failed: %v", err)
		}
	}
	assert.Equal(t, 2, ok, "renewals granted")
	assert.Equal(t, 1, superseded, "renewals refused")
}
