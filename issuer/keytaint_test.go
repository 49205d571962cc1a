package issuer_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/workloadapi"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// agentLikeSigner signs with a local CA's active keys but, as a node
// agent's Signer, does not say which JWT key is active. It can be made to
// fail, or to sign with given (old) keys.
type agentLikeSigner struct {
	local *issuer.LocalSigner
	fail  atomic.Bool

	mu       sync.Mutex
	jwtKey   *ca.JWTAuthority // when not nil, signs the JWT-SVIDs
	witKey   *ca.WITAuthority // when not nil, signs the WIT-SVIDs
	jwtCalls int
}

var _ issuer.WITSigner = (*agentLikeSigner)(nil)

func (s *agentLikeSigner) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	return s.local.SignX509SVIDs(ctx, reqs)
}

func (s *agentLikeSigner) SignJWTSVID(ctx context.Context, req issuer.JWTSVIDRequest) (string, error) {
	s.mu.Lock()
	key := s.jwtKey
	s.jwtCalls++
	s.mu.Unlock()
	switch {
	case s.fail.Load():
		return "", fmt.Errorf("%w: server unreachable", endpoint.ErrUnavailable)
	case key != nil:
		return key.SignJWTSVID(ctx, ca.JWTSVIDParams{ID: req.Entry.SPIFFEID, Audience: req.Audience, TTL: req.TTL})
	}
	return s.local.SignJWTSVID(ctx, req)
}

func (s *agentLikeSigner) SignWITSVID(ctx context.Context, req issuer.WITSVIDRequest) (string, error) {
	s.mu.Lock()
	key := s.witKey
	s.mu.Unlock()
	switch {
	case s.fail.Load():
		return "", fmt.Errorf("%w: server unreachable", endpoint.ErrUnavailable)
	case key != nil:
		return key.SignWITSVID(ctx, ca.WITSVIDParams{ID: req.Entry.SPIFFEID, PublicKey: req.Key.Public(), KeyAlgorithm: req.KeyAlgorithm, TTL: req.TTL})
	}
	return s.local.SignWITSVID(ctx, req)
}

func (s *agentLikeSigner) signWith(jwt *ca.JWTAuthority, wit *ca.WITAuthority) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jwtKey, s.witKey = jwt, wit
}

func (s *agentLikeSigner) calls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jwtCalls
}

// keyTaintEnv is an issuer whose Trust is a CA with WIT keys, and whose
// Signer signs with it as a node agent's does.
func keyTaintEnv(t *testing.T) (*env, *agentLikeSigner) {
	t.Helper()
	var s *agentLikeSigner
	e := newWITEnv(t, false, issuer.Config{}, func(l *issuer.LocalSigner) issuer.Signer {
		s = &agentLikeSigner{local: l}
		return s
	})
	e.register(t, registry.Entry{SPIFFEID: webID})
	return e, s
}

// Property: once the Trust names a JWT key as tainted, the issuer serves
// no JWT-SVID it signed, cached or fresh, even while the Signer fails, and
// has one of the active key signed instead, however far from its half
// life the cached one is.
func TestTaintedJWTKeyIsNotServed(t *testing.T) {
	e, s := keyTaintEnv(t)
	fetch, first, old := fetchThenRotateJWTKey(t, e)
	again, err := fetch()
	require.NoError(t, err)
	require.Equal(t, first, again, "the Signer does not say which key signs: the token is reused until its half life")

	// While the Signer fails, the cached token would be served; once its
	// key is tainted, it is not.
	s.fail.Store(true)
	require.NoError(t, e.ca.TaintJWTKey(t.Context(), old.KeyID()))
	require.Eventually(t, func() bool {
		_, err := fetch()
		return err != nil
	}, 10*time.Second, 5*time.Millisecond, "the tainted key's token is not served")
	_, err = fetch()
	requireCode(t, codes.Unavailable, err)

	// A Signer that signs with the tainted key still is refused.
	s.fail.Store(false)
	s.signWith(old, nil)
	_, err = fetch()
	requireCode(t, codes.Unavailable, err)

	s.signWith(nil, nil)
	fresh, err := fetch()
	require.NoError(t, err)
	assert.Equal(t, e.ca.JWTAuthority().KeyID(), jwsKeyID(t, fresh))
	calls := s.calls()
	again, err = fetch()
	require.NoError(t, err)
	assert.Equal(t, fresh, again, "the active key's token is cached again")
	assert.Equal(t, calls, s.calls())
}

// Property: once the Trust names a WIT key as tainted, an open
// FetchWITSVID stream receives a WIT-SVID of the active key at once, the
// next fetch gets that one, and none of the tainted key is served, fresh,
// cached or kept for a restart.
func TestTaintedWITKeyRenewsTheStream(t *testing.T) {
	e, s := keyTaintEnv(t)
	src, err := workloadapi.NewWITSource(t.Context(), workloadapi.WithClientOptions(workloadapi.WithAddr(e.addr)))
	require.NoError(t, err)
	defer src.Close()
	streamed := func() string {
		t.Helper()
		svid, err := src.GetWITSVIDForID(webID)
		require.NoError(t, err)
		return jwsKeyID(t, svid.Marshal())
	}
	old := e.ca.WITAuthority()
	require.Equal(t, old.KeyID(), streamed())

	_, err = e.ca.PrepareWITKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateWITKey(t.Context()))
	current := e.ca.WITAuthority().KeyID()
	saved, _ := e.iss.WITSVIDs()
	require.Len(t, saved, 1)
	version := e.iss.WITSVIDsVersion()

	require.NoError(t, e.ca.TaintWITKey(t.Context(), old.KeyID()))
	require.Eventually(t, func() bool { return streamed() == current }, 10*time.Second, 5*time.Millisecond,
		"the open stream receives a WIT-SVID of the active key")
	assert.NotEqual(t, version, e.iss.WITSVIDsVersion(), "what is saved for a restart changes")
	saved, _ = e.iss.WITSVIDs()
	for _, w := range saved {
		assert.Equal(t, current, jwsKeyID(t, w.Token))
	}
	svid, err := workloadapi.FetchWITSVID(t.Context(), "", workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	assert.Equal(t, current, jwsKeyID(t, svid.Marshal()))

	// A Signer that signs with the tainted key is refused: the caller
	// gets its other WIT-SVIDs.
	s.signWith(nil, old)
	e.register(t, registry.Entry{SPIFFEID: dbID})
	require.Eventually(t, func() bool {
		svids, err := workloadapi.FetchX509SVIDs(t.Context(), workloadapi.WithAddr(e.addr))
		return err == nil && len(svids) == 2
	}, 10*time.Second, 5*time.Millisecond, "the issuer serves the new entry")
	svids, err := workloadapi.FetchWITSVIDs(t.Context(), "", workloadapi.WithAddr(e.addr))
	require.NoError(t, err)
	require.Len(t, svids, 1)
	assert.Equal(t, webID, svids[0].ID)
	assert.Equal(t, current, jwsKeyID(t, svids[0].Marshal()))
}

// fetchThenRotateJWTKey has the issuer of e sign a JWT-SVID for audience
// "db" through a Workload API client, then prepares and activates a new
// JWT key. It returns the fetch it made (the token, marshalled), the
// token it got and the key that signed it.
func fetchThenRotateJWTKey(t *testing.T, e *env) (fetch func() (string, error), first string, old *ca.JWTAuthority) {
	t.Helper()
	c := e.client(t)
	fetch = func() (string, error) {
		svid, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "db"})
		if err != nil {
			return "", err
		}
		return svid.Marshal(), nil
	}
	first, err := fetch()
	require.NoError(t, err)
	old = e.ca.JWTAuthority()
	require.Equal(t, old.KeyID(), jwsKeyID(t, first))
	_, err = e.ca.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateJWTKey(t.Context()))
	return fetch, first, old
}
