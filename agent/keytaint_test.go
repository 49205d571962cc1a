package agent_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/svid/witsvid"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
)

// Property: when the server taints a JWT key or a WIT key, the agent
// serves no token it signed any more: the workload's next JWT-SVID and
// WIT-SVID are the active key's, without waiting for their half life.
func TestTaintedKeysReachTheWorkload(t *testing.T) {
	s := witServer(t)
	m := s.CA
	_, c := nodetest.StartWITWorkload(t, s, "/web")
	jwtKID := func() string {
		t.Helper()
		svid, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "db"})
		require.NoError(t, err)
		bundles, err := c.FetchJWTBundles(t.Context())
		require.NoError(t, err)
		_, err = jwtsvid.ParseAndValidate(svid.Marshal(), bundles, []string{"db"})
		require.NoError(t, err)
		raw, err := base64.RawURLEncoding.DecodeString(strings.SplitN(svid.Marshal(), ".", 2)[0])
		require.NoError(t, err)
		var header struct {
			Kid string `json:"kid"`
		}
		require.NoError(t, json.Unmarshal(raw, &header))
		return header.Kid
	}
	witKID := func() string {
		t.Helper()
		svid, err := c.FetchWITSVID(t.Context(), "")
		require.NoError(t, err)
		bundles, err := c.FetchWITBundles(t.Context())
		require.NoError(t, err)
		v, err := witsvid.ParseAndValidate(svid.Marshal(), bundles)
		require.NoError(t, err)
		return v.KeyID
	}
	oldJWT, oldWIT := jwtKID(), witKID()
	require.Equal(t, m.JWTAuthority().KeyID(), oldJWT)
	require.Equal(t, m.WITAuthority().KeyID(), oldWIT)

	_, err := m.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateJWTKey(t.Context()))
	_, err = m.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateWITKey(t.Context()))
	assert.Equal(t, oldJWT, jwtKID(), "reused until its half life")
	assert.Equal(t, oldWIT, witKID(), "reused until its half life")

	require.NoError(t, m.TaintJWTKey(t.Context(), oldJWT))
	require.NoError(t, m.TaintWITKey(t.Context(), oldWIT))
	require.Eventually(t, func() bool { return jwtKID() == m.JWTAuthority().KeyID() }, nodetest.Timeout, 10*time.Millisecond)
	require.Eventually(t, func() bool { return witKID() == m.WITAuthority().KeyID() }, nodetest.Timeout, 10*time.Millisecond)
	assert.Equal(t, []string{oldJWT}, m.TaintedJWTKeyIDs())
}
