package nodeserver_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
)

// cutOffReplica returns a replica of e's server whose agent records are
// out of reach once the returned store is stuck, and whose store calls
// time out after timeout; the agent renews through e first, so that the
// replica must read the store to know the SVID it presents.
func (e *env) cutOffReplica(t *testing.T, timeout time.Duration) (*env, *nodetest.StuckStore, *agent) {
	t.Helper()
	a := e.attest(t, "node1")
	cut := &nodetest.StuckStore{Store: e.store}
	r := e.replica(t, func(c *nodeserver.Config) { c.Agents, c.StoreTimeout = cut, timeout })
	key := newKey(t)
	renewed, err := a.client.RenewAgent(t.Context(), key)
	require.NoError(t, err)
	cut.Stuck.Store(true)
	cur := &agent{key: key, svid: renewed}
	cur.client, err = nodeapi.Dial(r.clientConfig(), cur)
	require.NoError(t, err)
	t.Cleanup(func() { cur.client.Close() })
	return r, cut, cur
}

// Property: a server cut off from its agent records answers an entry
// stream Unavailable once Config.StoreTimeout is up, so that the agent
// moves to another server: the stream has no deadline, and a server that
// held it open and silent would keep the agent from syncing for good.
func TestSyncOfAServerCutOffFromItsStoreIsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	_, _, a := e.cutOffReplica(t, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := a.client.Sync(ctx, nil, func(nodeapi.Update) error {
		return errors.New("an update from a server that cannot read the agent's record")
	})
	require.NoError(t, ctx.Err(), "the stream was held open until the client gave up: %v", err)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// Property: a renewal (a call with a deadline of its own) reaching a
// server cut off from its agent records is answered Unavailable at
// Config.StoreTimeout, before its own deadline.
func TestRenewalOfAServerCutOffFromItsStoreIsUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	_, _, a := e.cutOffReplica(t, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := a.client.RenewAgent(ctx, newKey(t))
	require.NoError(t, ctx.Err(), "the renewal was held until the client gave up: %v", err)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
}

// Property: once the store answers again, the server that was cut off
// serves the agent's entry stream.
func TestSyncOfAServerWhoseStoreIsBack(t *testing.T) {
	e := newEnv(t, nil)
	_, cut, a := e.cutOffReplica(t, 200*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := a.client.Sync(ctx, nil, func(nodeapi.Update) error { return errors.New("served") })
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	cut.Stuck.Store(false)
	err = a.client.Sync(ctx, nil, func(nodeapi.Update) error { return errors.New("served") })
	assert.EqualError(t, err, "served")
}

// Property: a negative StoreTimeout is refused.
func TestNegativeStoreTimeoutIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	_, err := nodeserver.New(t.Context(), nodeserver.Config{
		Authority: e.ca, Registry: e.store, Agents: e.store,
		Attestors: []attest.NodeAttestor{echoAttestor{}}, StoreTimeout: -time.Second,
	})
	assert.ErrorContains(t, err, "must not be negative")
}
