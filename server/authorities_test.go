package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// wait bounds every wait of these tests for something that must happen.
const wait = 20 * time.Second

// authorityOf returns the admin view of the authority with the given ID.
func authorityOf(t *testing.T, c *admin.Client, kind registry.AuthorityKind, id string) (admin.Authority, bool) {
	t.Helper()
	list, err := c.Authorities(t.Context())
	require.NoError(t, err)
	for _, a := range list {
		if a.Kind == kind && a.ID == id {
			return a, true
		}
	}
	return admin.Authority{}, false
}

// ownInfos returns the rotation state of the server's own authorities of
// the kind.
func ownInfos(s *nodetest.Server, kind registry.AuthorityKind) []rotation.AuthorityInfo {
	switch kind {
	case registry.AuthorityJWT:
		return s.CA().JWTKeys()
	case registry.AuthorityWIT:
		return s.CA().WITKeys()
	}
	return s.CA().X509CAs()
}

// ownInfo returns the rotation state of the server's own authority.
func ownInfo(s *nodetest.Server, kind registry.AuthorityKind, id string) (rotation.AuthorityInfo, bool) {
	for _, i := range ownInfos(s, kind) {
		if i.ID == id {
			return i, true
		}
	}
	return rotation.AuthorityInfo{}, false
}

func activeID(t *testing.T, s *nodetest.Server, kind registry.AuthorityKind) string {
	t.Helper()
	for _, i := range ownInfos(s, kind) {
		if i.State == rotation.StateActive {
			return i.ID
		}
	}
	t.Fatal("no active authority")
	return ""
}

// rotate prepares and activates a new authority of the kind on s through
// its admin API, and returns the ID of the authority that was active.
func rotate(t *testing.T, s *nodetest.Server, kind registry.AuthorityKind) (old string) {
	t.Helper()
	old = activeID(t, s, kind)
	prepared, err := s.Admin.PrepareAuthority(t.Context(), kind)
	require.NoError(t, err)
	assert.Equal(t, registry.AuthorityPrepared, prepared.State)
	assert.True(t, prepared.Local)
	assert.Equal(t, s.ID(), prepared.ServerID)
	activated, err := s.Admin.ActivateAuthority(t.Context(), kind, prepared.ID)
	require.NoError(t, err)
	assert.Equal(t, prepared.ID, activated.ID)
	assert.Equal(t, registry.AuthorityActive, activated.State)
	return old
}

// inBundle reports whether the bundle the server hands out holds the own
// authority of the kind with the given ID.
func inBundle(t *testing.T, s *nodetest.Server, kind registry.AuthorityKind, id string, cert *x509.Certificate) bool {
	t.Helper()
	switch kind {
	case registry.AuthorityX509:
		return s.Bundle().HasX509Authority(cert)
	case registry.AuthorityWIT:
		return s.Bundle().HasWITAuthority(id)
	}
	return s.Bundle().HasJWTAuthority(id)
}

func TestAuthorityOperations(t *testing.T) {
	s := start(t, server.Config{WITSVIDs: true})
	ctx := t.Context()
	c := s.Admin

	list, err := c.Authorities(ctx)
	require.NoError(t, err)
	require.Len(t, list, 3, "one X.509 CA, one JWT key and one WIT key")
	assert.Equal(t, registry.AuthorityX509, list[0].Kind)
	assert.Equal(t, registry.AuthorityJWT, list[1].Kind)
	assert.Equal(t, registry.AuthorityWIT, list[2].Kind)
	assert.Equal(t, s.CA().WITAuthority().KeyID(), list[2].ID, "a WIT key is named by its kid")
	for _, a := range list {
		assert.Equal(t, registry.AuthorityActive, a.State)
		assert.True(t, a.Local)
		assert.Equal(t, s.ID(), a.ServerID)
		assert.False(t, a.Tainted || a.Revoked || a.Pending)
	}

	for _, kind := range []registry.AuthorityKind{registry.AuthorityX509, registry.AuthorityJWT, registry.AuthorityWIT} {
		t.Run(string(kind), func(t *testing.T) {
			_, err := c.ActivateAuthority(ctx, kind, "")
			require.ErrorIs(t, err, admin.ErrFailedPrecondition, "nothing is prepared")
			assert.Contains(t, err.Error(), "prepare one first")

			first := activeID(t, s, kind)
			_, err = c.TaintAuthority(ctx, kind, first)
			require.ErrorIs(t, err, admin.ErrFailedPrecondition, "the active authority cannot be tainted")
			assert.Contains(t, err.Error(), "is active: the active authority cannot be tainted; on its server, prepare and activate another")
			_, err = c.RevokeAuthority(ctx, kind, first)
			require.ErrorIs(t, err, admin.ErrFailedPrecondition, "nor revoked")
			assert.Contains(t, err.Error(), "the active authority cannot be revoked; on its server, prepare and activate another")
			assert.Contains(t, err.Error(), "taint this one, and revoke it once what it signed has been replaced")

			prepared, err := c.PrepareAuthority(ctx, kind)
			require.NoError(t, err)
			_, err = c.TaintAuthority(ctx, kind, prepared.ID)
			require.ErrorIs(t, err, admin.ErrFailedPrecondition, "a prepared authority signed nothing")
			assert.Contains(t, err.Error(), "signed nothing and cannot be tainted")
			assert.True(t, inBundle(t, s, kind, prepared.ID, mustInfo(t, s, kind, prepared.ID).Certificate), "a prepared authority is published at once")

			_, err = c.ActivateAuthority(ctx, kind, first)
			require.ErrorIs(t, err, admin.ErrFailedPrecondition, "the ID given must be the prepared one")
			assert.Contains(t, err.Error(), "is active, not prepared")
			_, err = c.ActivateAuthority(ctx, kind, "00ff")
			require.ErrorIs(t, err, registry.ErrNotFound)
			activated, err := c.ActivateAuthority(ctx, kind, prepared.ID)
			require.NoError(t, err)
			assert.Equal(t, prepared.ID, activated.ID)
			old := mustInfo(t, s, kind, first)
			assert.Equal(t, rotation.StateOld, old.State)

			tainted, err := c.TaintAuthority(ctx, kind, first)
			require.NoError(t, err)
			assert.True(t, tainted.Tainted)
			assert.False(t, tainted.Pending, "the own authority is tainted at once")
			assert.True(t, mustInfo(t, s, kind, first).Tainted)
			if kind == registry.AuthorityX509 {
				assert.True(t, containsCert(trustTainted(t, s), old.Certificate), "the server names it as tainted to its agents")
			}
			_, err = c.TaintAuthority(ctx, kind, first)
			require.NoError(t, err, "tainting twice does nothing")

			revoked, err := c.RevokeAuthority(ctx, kind, first)
			require.NoError(t, err)
			assert.True(t, revoked.Revoked)
			_, ok := ownInfo(s, kind, first)
			assert.False(t, ok, "the revoked authority is gone")
			assert.False(t, inBundle(t, s, kind, first, old.Certificate), "and out of the bundle")
			_, err = c.RevokeAuthority(ctx, kind, first)
			require.ErrorIs(t, err, registry.ErrNotFound)
			_, err = c.TaintAuthority(ctx, kind, "00ff")
			require.ErrorIs(t, err, registry.ErrNotFound)
			assert.Contains(t, err.Error(), "among the authorities of the trust domain's servers")

			// A prepared authority of the own server can be revoked.
			next, err := c.PrepareAuthority(ctx, kind)
			require.NoError(t, err)
			_, err = c.RevokeAuthority(ctx, kind, next.ID)
			require.NoError(t, err)
			_, ok = ownInfo(s, kind, next.ID)
			assert.False(t, ok)
		})
	}
}

func mustInfo(t *testing.T, s *nodetest.Server, kind registry.AuthorityKind, id string) rotation.AuthorityInfo {
	t.Helper()
	i, ok := ownInfo(s, kind, id)
	require.True(t, ok, "no %s authority %s", kind, id)
	return i
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	return slices.ContainsFunc(list, func(x *x509.Certificate) bool { return x.Equal(c) })
}

// trustTainted returns the tainted CAs the server names to its agents, as
// a node agent receives them.
func trustTainted(t *testing.T, s *nodetest.Server) []*x509.Certificate {
	t.Helper()
	w := watchTaints(t, s)
	var got []*x509.Certificate
	require.Eventually(t, func() bool {
		var ok bool
		got, ok = w.latest()
		return ok
	}, wait, 5*time.Millisecond)
	return got
}

// taintWatcher is a node agent reduced to its entry stream: it records
// the tainted CAs of the last update its server sent.
type taintWatcher struct {
	mu       sync.Mutex
	tainted  []*x509.Certificate
	jwt, wit []string // kids of the tainted keys
	got      bool
}

// namesKeys reports whether the last update named the JWT key jwt and the
// WIT key wit as tainted.
func (w *taintWatcher) namesKeys(jwt, wit string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.jwt, jwt) && slices.Contains(w.wit, wit)
}

func (w *taintWatcher) latest() ([]*x509.Certificate, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tainted, w.got
}

// names reports whether the last update named c as tainted.
func (w *taintWatcher) names(c *x509.Certificate) bool {
	list, _ := w.latest()
	return containsCert(list, c)
}

type svidSource struct {
	key  crypto.Signer
	svid *nodeapi.AgentSVID
}

func (s svidSource) GetX509SVID() (*x509svid.SVID, error) {
	return &x509svid.SVID{ID: s.svid.ID, Certificates: s.svid.Certificates, PrivateKey: s.key}, nil
}

// watchTaints attests to s with a join token and follows its entry stream
// until the test ends.
func watchTaints(t *testing.T, s *nodetest.Server) *taintWatcher {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	cfg := nodeapi.ClientConfig{Servers: []string{s.Addr().String()}, TrustDomain: td, Bundle: s.Bundle()}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	svid, err := nodeapi.Attest(ctx, cfg, jointoken.NewClient(s.Token(t)), key)
	require.NoError(t, err)
	c, err := nodeapi.Dial(cfg, svidSource{key, svid})
	require.NoError(t, err)
	w := &taintWatcher{}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Sync(sctx, nil, func(u nodeapi.Update) error {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.tainted, w.jwt, w.wit, w.got = u.TaintedX509CAs, u.TaintedJWTKeyIDs, u.TaintedWITKeyIDs, true
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		<-done
		c.Close()
	})
	return w
}

// Property: with two servers on one database, each with its own CA, a
// taint and then a revocation made through one server of an authority of
// the other reach both servers and the agents of both: the owning server
// applies them to its CA, both servers name the tainted CA to their agents
// (and an agent whose own SVID it signed renews it), and the revoked CA
// leaves the bundle both servers hand out.
func TestTaintAndRevokeAcrossServers(t *testing.T) {
	a, b := haPair(t, nil)
	ctx := t.Context()
	agentB := agentWithEntry(t, b)
	agentA := agentWithEntry(t, a)
	srcB := x509Source(t, agentB.Addr)
	watchA, watchB := watchTaints(t, a), watchTaints(t, b)

	caB1 := b.CA().X509Authority().Certificate()
	require.Equal(t, caB1.Raw, agentB.SVID().Certificates[1].Raw, "B's agent holds an agent SVID of B's CA")
	idB1 := rotate(t, b, registry.AuthorityX509)
	caB2 := b.CA().X509Authority().Certificate()
	require.Eventually(t, func() bool { return signedBy(srcB, td, caB2) }, wait, 5*time.Millisecond,
		"B's workloads move to B's new CA")

	// A lists B's authorities as B published them.
	require.Eventually(t, func() bool {
		got, ok := authorityOf(t, a.Admin, registry.AuthorityX509, idB1)
		return ok && got.State == registry.AuthorityOld && got.ServerID == b.ID() && !got.Local
	}, wait, 5*time.Millisecond)

	// Refused through A, as on B: B's active CA, and an unknown one.
	_, err := a.Admin.TaintAuthority(ctx, registry.AuthorityX509, activeID(t, b, registry.AuthorityX509))
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "of server "+b.ID()+" is active: the active authority cannot be tainted")
	assert.NotContains(t, err.Error(), "failed precondition", "the message says it all")
	_, err = a.Admin.RevokeAuthority(ctx, registry.AuthorityX509, "00ff")
	require.ErrorIs(t, err, registry.ErrNotFound)

	// Taint B's old CA through A.
	tainted, err := a.Admin.TaintAuthority(ctx, registry.AuthorityX509, idB1)
	require.NoError(t, err)
	assert.Equal(t, b.ID(), tainted.ServerID)
	assert.False(t, tainted.Local)
	assert.True(t, tainted.Tainted)
	require.Eventually(t, func() bool { return mustInfo(t, b, registry.AuthorityX509, idB1).Tainted }, wait, 5*time.Millisecond,
		"B applies the taint to its CA")
	require.Eventually(t, func() bool { return watchA.names(caB1) && watchB.names(caB1) }, wait, 5*time.Millisecond,
		"both servers name B's tainted CA to their agents")
	require.Eventually(t, func() bool { return agentB.SVID().Certificates[1].Equal(caB2) }, wait, 5*time.Millisecond,
		"B's agent renews its SVID off the tainted CA")
	require.Eventually(t, func() bool {
		got, ok := authorityOf(t, a.Admin, registry.AuthorityX509, idB1)
		return ok && got.Tainted && !got.Pending
	}, wait, 5*time.Millisecond, "A lists the taint as applied")

	// Revoke it through A: it leaves the bundle of both servers and of the
	// agents of both.
	revoked, err := a.Admin.RevokeAuthority(ctx, registry.AuthorityX509, idB1)
	require.NoError(t, err)
	assert.True(t, revoked.Revoked)
	assert.False(t, a.Bundle().HasX509Authority(caB1), "A leaves it out at once")
	require.Eventually(t, func() bool {
		_, held := ownInfo(b, registry.AuthorityX509, idB1)
		return !held && !b.Bundle().HasX509Authority(caB1)
	}, wait, 5*time.Millisecond, "B drops it from its CA and bundle")
	require.Eventually(t, func() bool {
		return !agentA.Bundle().HasX509Authority(caB1) && !agentB.Bundle().HasX509Authority(caB1) &&
			!hasX509Authority(srcB, td, caB1)
	}, wait, 5*time.Millisecond, "the agents and workloads of both servers drop it")
	assert.True(t, a.Bundle().HasX509Authority(caB2) && b.Bundle().HasX509Authority(caB2), "B's active CA stays")
	_, listed := authorityOf(t, a.Admin, registry.AuthorityX509, idB1)
	assert.False(t, listed)
}

// Property: a revocation made through one server while the owning server
// is away is honoured by every other server at once, and applied by the
// owner when it comes back.
func TestRevocationWhileOwnerIsAway(t *testing.T) {
	dsn := pgtest.New(t)
	dirB := t.TempDir()
	a := start(t, serverConfig(t, dsn, nil))
	b := nodetest.StartServerIn(t, dirB, serverConfig(t, dsn, nil))
	idB1 := rotate(t, b, registry.AuthorityJWT)
	require.Eventually(t, func() bool {
		got, ok := authorityOf(t, a.Admin, registry.AuthorityJWT, idB1)
		return ok && got.State == registry.AuthorityOld
	}, wait, 5*time.Millisecond)
	require.True(t, a.Bundle().HasJWTAuthority(idB1))
	b.Stop()

	got, err := a.Admin.RevokeAuthority(t.Context(), registry.AuthorityJWT, idB1)
	require.NoError(t, err)
	assert.True(t, got.Revoked && got.Pending, "recorded; B has not applied it")
	assert.False(t, a.Bundle().HasJWTAuthority(idB1), "A leaves it out at once")

	b2 := nodetest.StartServerIn(t, dirB, serverConfig(t, dsn, nil))
	require.Equal(t, b.ID(), b2.ID())
	_, held := ownInfo(b2, registry.AuthorityJWT, idB1)
	assert.False(t, held, "B applied the revocation when it started")
	assert.False(t, b2.Bundle().HasJWTAuthority(idB1))
	require.Eventually(t, func() bool {
		_, listed := authorityOf(t, a.Admin, registry.AuthorityJWT, idB1)
		return !listed
	}, wait, 5*time.Millisecond, "B published its CA without it")
}

// Property: a server that signs no WIT-SVIDs lists no WIT key, and an
// operation on its WIT keys is refused with an error that says why, not
// a panic or an internal error.
func TestWITAuthorityWithoutWITKeys(t *testing.T) {
	s := start(t, server.Config{})
	ctx := t.Context()
	c := s.Admin

	list, err := c.Authorities(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2, "one X.509 CA and one JWT key")
	for _, a := range list {
		assert.NotEqual(t, registry.AuthorityWIT, a.Kind)
	}

	_, err = c.PrepareAuthority(ctx, registry.AuthorityWIT)
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "this server signs no WIT-SVIDs, so its CA has no WIT key")
	assert.Contains(t, err.Error(), "-wit-svids")
	_, err = c.ActivateAuthority(ctx, registry.AuthorityWIT, "")
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	assert.Contains(t, err.Error(), "this server signs no WIT-SVIDs")
	_, err = c.ActivateAuthority(ctx, registry.AuthorityWIT, "kid")
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	_, err = c.TaintAuthority(ctx, registry.AuthorityWIT, "kid")
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Contains(t, err.Error(), `no WIT key "kid" among the authorities of the trust domain's servers (this server signs no WIT-SVIDs`)
	_, err = c.RevokeAuthority(ctx, registry.AuthorityWIT, "kid")
	require.ErrorIs(t, err, registry.ErrNotFound)
	assert.Empty(t, s.CA().WITKeys())
}
