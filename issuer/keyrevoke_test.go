package issuer_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Property: once a JWT key leaves the trust domain's bundle (revoked,
// without a taint first), the issuer serves no cached JWT-SVID it signed,
// even while the Signer fails, however far from its half life the token
// is; the next fetch gets a token of the active key, which is cached again.
func TestRevokedJWTKeyIsNotServed(t *testing.T) {
	e, s := keyTaintEnv(t)
	fetch, first, old := fetchThenRotateJWTKey(t, e)
	current := e.ca.JWTAuthority().KeyID()
	require.NotEqual(t, old.KeyID(), current)
	again, err := fetch()
	require.NoError(t, err)
	require.Equal(t, first, again, "the Signer does not say which key signs: the token is reused until its half life")

	// While the Signer fails, the cached token would be served; once its
	// key has left the bundle, it is not.
	s.fail.Store(true)
	require.NoError(t, e.ca.RevokeJWTKey(t.Context(), old.KeyID()))
	require.Eventually(t, func() bool {
		_, err := fetch()
		return err != nil
	}, 10*time.Second, 5*time.Millisecond, "the revoked key's token is not served")
	_, err = fetch()
	requireCode(t, codes.Unavailable, err)

	s.fail.Store(false)
	fresh, err := fetch()
	require.NoError(t, err)
	assert.Equal(t, current, jwsKeyID(t, fresh))
	calls := s.calls()
	again, err = fetch()
	require.NoError(t, err)
	assert.Equal(t, fresh, again, "the active key's token is cached again")
	assert.Equal(t, calls, s.calls())

	// What a workload validates with holds the key that signed it.
	bundles, err := workloadapi.FetchJWTBundles(t.Context(), workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	_, err = jwtsvid.ParseAndValidate(fresh, bundles, []string{"db"})
	assert.NoError(t, err)
}

// Property: the cached tokens of a revoked JWT key, whatever their
// audience, are dropped as soon as the issuer learns that the key left the
// bundle, before anyone asks for them (and logged once); tokens of the
// active key replace them, and are cached again.
func TestRevokedJWTKeyTokensAreDropped(t *testing.T) {
	logs := &logtest.Buffer{}
	var s *agentLikeSigner
	e := newWITEnv(t, false, issuer.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))}, func(l *issuer.LocalSigner) issuer.Signer {
		s = &agentLikeSigner{local: l}
		return s
	})
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	audiences := []string{"db", "cache"}
	for _, aud := range audiences {
		_, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: aud})
		require.NoError(t, err)
	}
	old := e.ca.JWTAuthority().KeyID()
	_, err := e.ca.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateJWTKey(t.Context()))
	current := e.ca.JWTAuthority().KeyID()
	assert.NotContains(t, logs.String(), "no longer in the bundle", "a key activated still is in the bundle")

	require.NoError(t, e.ca.RevokeJWTKey(t.Context(), old))
	dropped := fmt.Sprintf(`msg="dropped the cached JWT-SVIDs of keys no longer in the bundle" count=2 kids=[%s]`, old)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), dropped) },
		10*time.Second, 5*time.Millisecond, logs.String())
	calls := s.calls()
	for _, aud := range audiences {
		svid, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: aud})
		require.NoError(t, err)
		assert.Equal(t, current, jwsKeyID(t, svid.Marshal()), aud)
	}
	assert.Equal(t, calls+len(audiences), s.calls(), "one new token per audience")
	for _, aud := range audiences {
		_, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: aud})
		require.NoError(t, err)
	}
	assert.Equal(t, calls+len(audiences), s.calls(), "the new tokens are cached")
	assert.Equal(t, 1, strings.Count(logs.String(), "no longer in the bundle"), logs.String())
}

// Property: the WIT-SVIDs of a key that leaves the trust domain's bundle
// (revoked without a taint first) are dropped as soon as the issuer learns
// of the new bundle, before anyone asks for them (and logged once), so
// that what a program keeps for a restart holds none; the next fetch gets
// one of the active key.
func TestRevokedWITKeyWITSVIDsAreDropped(t *testing.T) {
	logs := &logtest.Buffer{}
	e := newWITEnv(t, false, issuer.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))}, nil)
	e.register(t, registry.Entry{SPIFFEID: webID})
	svid, err := workloadapi.FetchWITSVID(t.Context(), "", workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	old := jwsKeyID(t, svid.Marshal())
	_, err = e.ca.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateWITKey(t.Context()))
	current := e.ca.WITAuthority().KeyID()
	held, _ := e.iss.WITSVIDs()
	require.Len(t, held, 1, "kept until its half life")
	version := e.iss.WITSVIDsVersion()
	assert.NotContains(t, logs.String(), "no longer in the bundle", "a key activated still is in the bundle")

	require.NoError(t, e.ca.RevokeWITKey(t.Context(), old))
	dropped := fmt.Sprintf(`msg="dropped the WIT-SVIDs of keys no longer in the bundle; renewing those of open streams" count=1 kids=[%s]`, old)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), dropped) },
		10*time.Second, 5*time.Millisecond, logs.String())
	held, _ = e.iss.WITSVIDs()
	for _, w := range held {
		// A stream still open may have one of the active key already.
		assert.NotEqual(t, old, jwsKeyID(t, w.Token), "dropped before anyone asks")
	}
	assert.NotEqual(t, version, e.iss.WITSVIDsVersion(), "what is saved for a restart changes")

	svid, err = workloadapi.FetchWITSVID(t.Context(), "", workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	assert.Equal(t, current, jwsKeyID(t, svid.Marshal()))
	assert.Equal(t, 1, strings.Count(logs.String(), "no longer in the bundle"), logs.String())
}
