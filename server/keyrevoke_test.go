package server_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Property: a JWT key revoked through the admin API without a taint first
// leaves the bundle the agents hold, which then stop serving the tokens it
// signed: the workload's next JWT-SVID is signed by the active key, long
// before the half life of the token the agent held, and validates with
// the JWT bundle the workload is served.
func TestRevokedJWTKeyReachesTheWorkload(t *testing.T) {
	s := start(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	ctx := t.Context()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr(a.Addr))
	require.NoError(t, err)
	defer c.Close()
	fetch := func() (string, string) {
		t.Helper()
		svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "db"})
		require.NoError(t, err)
		return svid.Marshal(), headerKID(t, svid.Marshal())
	}
	_, oldKey := fetch()

	// A new key signs from now on; the agent, which cannot know which key
	// signs, keeps what the old one signed until its half life.
	require.Equal(t, oldKey, rotate(t, s, registry.AuthorityJWT))
	newKey := activeID(t, s, registry.AuthorityJWT)
	_, kid := fetch()
	require.Equal(t, oldKey, kid, "reused until its half life")

	_, err = s.Admin.RevokeAuthority(ctx, registry.AuthorityJWT, oldKey)
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, kid := fetch(); return kid == newKey }, nodetest.Timeout, 10*time.Millisecond,
		"the JWT-SVID of the revoked key is replaced")
	token, _ := fetch()
	bundles, err := c.FetchJWTBundles(ctx)
	require.NoError(t, err)
	b, err := bundles.GetJWTBundleForTrustDomain(web.SPIFFEID.TrustDomain())
	require.NoError(t, err)
	assert.False(t, b.HasJWTAuthority(oldKey), "the revoked key left the workload's bundle")
	_, err = jwtsvid.ParseAndValidate(token, bundles, []string{"db"})
	assert.NoError(t, err)
}
