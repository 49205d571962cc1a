package nodeserver_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// singleUseEcho is the echo attestor with CanReattest false, as a node
// attestor whose evidence admits a node once (trust on first use) says.
type singleUseEcho struct{ echoAttestor }

func (s singleUseEcho) Attest(ctx context.Context, td spiffeid.TrustDomain, payload []byte, challenge attest.Challenger) (attest.NodeResult, error) {
	res, err := s.echoAttestor.Attest(ctx, td, payload, challenge)
	res.CanReattest = false
	return res, err
}

// Property: an agent whose node attestor does not allow attesting again
// (join_token: a token is used once) is refused when a node attests again
// under its agent ID, whether the agent's record or the new attestation says
// so: the new proof would take over the agent's identity (and its entries)
// from the node that holds it. The record is left as it was, the agent keeps
// renewing with its SVID, and once it is evicted its ID may be attested
// again. An agent whose attestor allows it attests again freely.
func TestAttestingAgainNeedsANodeAttestorThatAllowsIt(t *testing.T) {
	const refused = "the agent is attested already, and its node attestor does not allow attesting again"
	t.Run("join token for an agent ID in use", func(t *testing.T) {
		e := newEnv(t, withJoinToken(t))
		agentID := spiffeid.RequireFromPath(td, "/spiffekit/agent/fixed")
		token := func() string {
			tok, _, err := jointoken.Generate(t.Context(), e.store, jointoken.Params{AgentID: agentID})
			require.NoError(t, err)
			return tok
		}
		key := newKey(t)
		first, err := nodeapi.Attest(t.Context(), e.clientConfig(), jointoken.NewClient(token()), key)
		require.NoError(t, err)
		require.Equal(t, agentID, first.ID)

		_, err = nodeapi.Attest(t.Context(), e.clientConfig(), jointoken.NewClient(token()), newKey(t))
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		assert.ErrorContains(t, err, refused)
		rec, err := e.store.GetAgent(t.Context(), agentID)
		require.NoError(t, err)
		assert.Equal(t, first.Certificates[0].SerialNumber.Text(16), rec.SerialNumber, "the record is the first node's")
		assert.False(t, rec.CanReattest)

		// The agent itself renews with its SVID.
		a := &agent{key: key, svid: first}
		c, err := nodeapi.Dial(e.clientConfig(), a)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.RenewAgent(t.Context(), newKey(t))
		require.NoError(t, err)

		// Evicted, the agent ID may be attested again.
		require.NoError(t, e.store.DeleteAgent(t.Context(), agentID))
		again, err := nodeapi.Attest(t.Context(), e.clientConfig(), jointoken.NewClient(token()), newKey(t))
		require.NoError(t, err)
		assert.Equal(t, agentID, again.ID)
	})
	t.Run("the record says no", func(t *testing.T) {
		e := newEnv(t, nil)
		a := e.attest(t, "node1")
		rec, err := e.store.GetAgent(t.Context(), a.svid.ID)
		require.NoError(t, err)
		require.True(t, rec.CanReattest)
		rec.CanReattest = false // as a record of a join token agent is
		_, err = e.store.PutAgent(t.Context(), rec)
		require.NoError(t, err)

		_, err = nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		assert.ErrorContains(t, err, refused)
		after, err := e.store.GetAgent(t.Context(), a.svid.ID)
		require.NoError(t, err)
		assert.Equal(t, rec.SerialNumber, after.SerialNumber, "the record is unchanged")
	})
	t.Run("the new attestation says no", func(t *testing.T) {
		e := newEnv(t, func(c *nodeserver.Config) { c.Attestors = []attest.NodeAttestor{singleUseEcho{}} })
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		first, err := nodeapi.Attest(ctx, e.clientConfig(), echoClient{"node1"}, newKey(t))
		require.NoError(t, err)
		// Another record holds the ID, one that allows attesting again (say,
		// an x509pop agent's): a single-use proof for that ID is refused.
		rec, err := e.store.GetAgent(t.Context(), first.ID)
		require.NoError(t, err)
		rec.CanReattest = true
		_, err = e.store.PutAgent(t.Context(), rec)
		require.NoError(t, err)
		_, err = nodeapi.Attest(ctx, e.clientConfig(), echoClient{"node1"}, newKey(t))
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
		assert.ErrorContains(t, err, refused)
	})
	t.Run("allowed", func(t *testing.T) {
		e := newEnv(t, nil)
		a := e.attest(t, "node1")
		again, err := nodeapi.Attest(t.Context(), e.clientConfig(), echoClient{"node1"}, newKey(t))
		require.NoError(t, err)
		assert.Equal(t, a.svid.ID, again.ID)
		rec, err := e.store.GetAgent(t.Context(), again.ID)
		require.NoError(t, err)
		assert.Equal(t, again.Certificates[0].SerialNumber.Text(16), rec.SerialNumber)
	})
}
