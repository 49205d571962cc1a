package issuer_test

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func issuedBy(s *x509svid.SVID) string { return hex.EncodeToString(s.Certificates[0].AuthorityKeyId) }

func TestRegistrationDeliversSVID(t *testing.T) {
	e := newEnv(t, issuer.Config{X509SVIDTTL: 10 * time.Minute})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID, Hint: "web", DNSNames: []string{"web.example.org"}})
	c := e.client(t)

	svids, err := c.FetchX509SVIDs(t.Context())
	require.NoError(t, err)
	require.Len(t, svids, 1)
	s := svids[0]
	assert.Equal(t, webID, s.ID)
	assert.Equal(t, "web", s.Hint)
	leaf := s.Certificates[0]
	assert.Equal(t, []string{"web.example.org"}, leaf.DNSNames)
	assert.InDelta(t, 10*time.Minute+10*time.Second, leaf.NotAfter.Sub(leaf.NotBefore), float64(time.Second))

	// The SVID verifies against the bundle the same API serves (WAPI rule 11).
	bundles, err := c.FetchX509Bundles(t.Context())
	require.NoError(t, err)
	_, _, err = x509svid.Verify(s.Certificates, bundles)
	require.NoError(t, err)
	assert.Equal(t, e.ca.X509CAs()[0].ID, issuedBy(s))
	assert.Equal(t, td, e.iss.TrustDomain())

	// A second caller of the same entry gets the cached SVID.
	again, err := c.FetchX509SVID(t.Context())
	require.NoError(t, err)
	assert.Equal(t, leaf.Raw, again.Certificates[0].Raw)
}

func TestSQLiteRegistry(t *testing.T) {
	store, err := sqlstore.Open(t.Context(), sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(t.TempDir(), "r.db")})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	e := newEnv(t, issuer.Config{Registry: store, PollInterval: 20 * time.Millisecond})
	e.serve(t)
	c := e.client(t)
	w := watch(t, c)
	// WAPI rule 10: no entry, no identity.
	requireCode(t, codes.PermissionDenied, w.nextErr(t))

	// Without Sync, the poll finds the entry; the watch's retry picks it up.
	_, err = store.Create(t.Context(), registry.Entry{SPIFFEID: dbID, ParentID: parentID, Selectors: []attest.Selector{ourUID}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		s, err := c.FetchX509SVID(t.Context())
		return err == nil && s.ID == dbID
	}, 10*time.Second, 20*time.Millisecond)
}

func TestEntitlement(t *testing.T) {
	// An entry applies only when ALL its selectors are the caller's.
	for _, tt := range []struct {
		name      string
		selectors []attest.Selector
		parent    string
		granted   bool
	}{
		{"our uid", []attest.Selector{ourUID}, "", true},
		{"another uid is never ours", []attest.Selector{otherUID}, "", false},
		{"superset of our selectors", []attest.Selector{ourUID, {Type: "unix", Value: "user:no-such-user-xyz"}}, "", false},
		{"other selector type", []attest.Selector{{Type: "k8s", Value: "ns:default"}}, "", false},
		{"other parent", []attest.Selector{ourUID}, "/elsewhere", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, issuer.Config{ParentID: parentID})
			e.serve(t)
			entry := registry.Entry{SPIFFEID: webID, Selectors: tt.selectors}
			if tt.parent != "" {
				entry.ParentID = spiffeid.RequireFromPath(td, tt.parent)
			}
			e.register(t, entry)
			s, err := e.client(t).FetchX509SVID(t.Context())
			if !tt.granted {
				requireCode(t, codes.PermissionDenied, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, webID, s.ID)
		})
	}
}

func TestIdentityLifecycleOnStream(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	e.serve(t)
	c := e.client(t)

	// No entry: PermissionDenied; an entry registered later is picked up
	// on the next call.
	_, err := c.FetchX509SVID(t.Context())
	requireCode(t, codes.PermissionDenied, err)
	web := e.register(t, registry.Entry{SPIFFEID: webID, Hint: "web"})
	s, err := c.FetchX509SVID(t.Context())
	require.NoError(t, err)
	require.Equal(t, webID, s.ID)

	w := watch(t, c)
	first := w.next(t)
	require.Len(t, first.SVIDs, 1)

	// A registry change reaches the open stream. memstore notifies the
	// issuer, so no Sync is needed.
	start := time.Now()
	db, err := e.store.Create(t.Context(), registry.Entry{SPIFFEID: dbID, ParentID: parentID, Selectors: []attest.Selector{ourUID}, Hint: "db"})
	require.NoError(t, err)
	second := w.next(t)
	t.Logf("registry change reached the open stream in %v", time.Since(start))
	require.Len(t, second.SVIDs, 2)
	assert.ElementsMatch(t, []string{"web", "db"}, []string{second.SVIDs[0].Hint, second.SVIDs[1].Hint})
	assert.Equal(t, first.SVIDs[0].Certificates[0].Raw, svidByHint(second.SVIDs, "web").Certificates[0].Raw,
		"the untouched entry keeps its SVID")

	// An updated entry gets a new SVID.
	db.DNSNames = []string{"db.example.org"}
	_, err = e.store.Update(t.Context(), db)
	require.NoError(t, err)
	third := w.next(t)
	assert.Equal(t, []string{"db.example.org"}, svidByHint(third.SVIDs, "db").Certificates[0].DNSNames)

	// Entitlement gone: the stream ends with PermissionDenied (WAPI rule 10).
	e.remove(t, web)
	_, err = e.store.Delete(t.Context(), db.ID, 0)
	require.NoError(t, err)
	for {
		select {
		case u := <-w.updates:
			require.Len(t, u.SVIDs, 1, "only db's removal may be pending")
			continue
		case err := <-w.errs:
			requireCode(t, codes.PermissionDenied, err)
		case <-time.After(10 * time.Second):
			t.Fatal("the stream did not end")
		}
		break
	}
}

func svidByHint(svids []*x509svid.SVID, hint string) *x509svid.SVID {
	for _, s := range svids {
		if s.Hint == hint {
			return s
		}
	}
	return nil
}

func TestRotationPushesNewSVIDs(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID})
	w := watch(t, e.client(t))
	before := w.next(t)
	oldCA := issuedBy(before.SVIDs[0])

	start := time.Now()
	newCA := e.rotate(t)
	var after *x509svid.SVID
	for after == nil || issuedBy(after) != newCA {
		after = w.next(t).SVIDs[0]
	}
	t.Logf("CA rotation reached the open stream in %v", time.Since(start))
	assert.NotEqual(t, oldCA, newCA)
	assert.NotEqual(t, before.SVIDs[0].Certificates[0].SerialNumber, after.Certificates[0].SerialNumber)
	// TTLs never exceed the CA's remaining life.
	for _, info := range e.ca.X509CAs() {
		if info.ID == newCA {
			assert.False(t, after.Certificates[0].NotAfter.After(info.NotAfter))
		}
	}
}

func TestTaintReMints(t *testing.T) {
	e := newEnv(t, issuer.Config{LazyRotation: true})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	w := watch(t, c)
	before := w.next(t).SVIDs[0]
	oldCA := issuedBy(before)

	newCA := e.rotate(t)
	// Lazy: the bundle changes (the stream gets it), the SVID does not.
	u := w.next(t)
	assert.Equal(t, before.Certificates[0].Raw, u.SVIDs[0].Certificates[0].Raw)
	s, err := c.FetchX509SVID(t.Context())
	require.NoError(t, err)
	assert.Equal(t, oldCA, issuedBy(s))

	start := time.Now()
	require.NoError(t, e.ca.TaintX509CA(t.Context(), oldCA))
	var after *x509svid.SVID
	for after == nil || issuedBy(after) != newCA {
		after = w.next(t).SVIDs[0]
	}
	t.Logf("taint reached the open stream in %v", time.Since(start))
}

func TestJWTSVIDs(t *testing.T) {
	e := newEnv(t, issuer.Config{JWTSVIDTTL: 2 * time.Minute})
	e.serve(t)
	c := e.client(t)
	_, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "db"})
	requireCode(t, codes.PermissionDenied, err)

	e.register(t, registry.Entry{SPIFFEID: webID, Hint: "web"})
	e.register(t, registry.Entry{SPIFFEID: dbID, Hint: "db", JWTSVIDTTL: time.Minute})
	all, err := c.FetchJWTSVIDs(t.Context(), jwtsvid.Params{Audience: "billing"})
	require.NoError(t, err)
	require.Len(t, all, 2)
	bundles, err := c.FetchJWTBundles(t.Context())
	require.NoError(t, err)
	for _, s := range all {
		v, err := jwtsvid.ParseAndValidate(s.Marshal(), bundles, []string{"billing"})
		require.NoError(t, err)
		ttl := 2 * time.Minute
		if s.ID == dbID {
			ttl = time.Minute
		}
		assert.WithinDuration(t, time.Now().Add(ttl), v.Expiry, 5*time.Second)
	}

	one, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "billing", Subject: dbID})
	require.NoError(t, err)
	assert.Equal(t, dbID, one.ID)
	assert.Equal(t, "db", one.Hint)
	// Cached for the same entry and audience, not for another audience.
	again, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "billing", Subject: dbID})
	require.NoError(t, err)
	assert.Equal(t, one.Marshal(), again.Marshal())
	other, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "payments", Subject: dbID})
	require.NoError(t, err)
	assert.NotEqual(t, one.Marshal(), other.Marshal())

	// An identity the caller does not hold (WAPI rule 12).
	_, err = c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "billing", Subject: spiffeid.RequireFromPath(td, "/nope")})
	requireCode(t, codes.PermissionDenied, err)

	// A new JWT key: the cached token is not reused.
	_, err = e.ca.PrepareJWTKey(t.Context())
	require.NoError(t, err)
	require.NoError(t, e.ca.ActivateJWTKey(t.Context()))
	fresh, err := c.FetchJWTSVID(t.Context(), jwtsvid.Params{Audience: "billing", Subject: dbID})
	require.NoError(t, err)
	assert.NotEqual(t, one.Marshal(), fresh.Marshal())
}

func TestCloseStopsEverything(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	e := newEnv(t, issuer.Config{})
	e.serve(t)
	e.register(t, registry.Entry{SPIFFEID: webID})
	c := e.client(t)
	w := watch(t, c)
	first := w.next(t)

	// Close makes Run return (run's cleanup checks it returned nil) and
	// waits for it.
	require.NoError(t, e.iss.Close())
	require.NoError(t, e.iss.Close(), "Close is idempotent")
	_, err := e.iss.Subscribe(t.Context(), self())
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorContains(t, err, "closed")
	err = e.iss.Run(t.Context())
	require.ErrorIs(t, err, endpoint.ErrUnavailable, "Run after Close fails at once")

	// Over the Workload API: a new call fails with Unavailable, and the
	// open stream keeps its last view, with no update, until the server
	// stops.
	s, err := c.FetchX509SVID(t.Context())
	requireCode(t, codes.Unavailable, err)
	assert.Nil(t, s)
	select {
	case u := <-w.updates:
		t.Fatalf("an update after Close: %v", u.SVIDs)
	default:
	}
	assert.Len(t, first.SVIDs, 1)
}

func TestNewStartsNothing(t *testing.T) {
	before := goleak.IgnoreCurrent()
	e := newIdleEnv(t, issuer.Config{})
	leaktest.VerifyNone(t, before)
	require.NoError(t, e.iss.Close(), "Close returns without a Run to wait for")
}

// subscribeAsync subscribes as self in the background; the result comes on
// the returned channel.
func subscribeAsync(t testing.TB, iss *issuer.Issuer) <-chan error {
	got := make(chan error, 1)
	go func() {
		sub, err := iss.Subscribe(t.Context(), self())
		if err == nil {
			sub.Close()
		}
		got <- err
	}()
	return got
}

func TestOnlyRunMints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newIdleEnv(t, issuer.Config{})
		e.register(t, registry.Entry{SPIFFEID: webID})

		// Before Run, a caller that needs a new SVID waits ...
		got := subscribeAsync(t, e.iss)
		synctest.Wait()
		select {
		case err := <-got:
			t.Fatalf("Subscribe returned before Run: %v", err)
		default:
		}
		// ... for Run to mint it.
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.iss.Run(ctx) }()
		require.NoError(t, <-got)
		require.ErrorContains(t, e.iss.Run(t.Context()), "Run called twice")

		// Once Run has returned, cached SVIDs are served and new ones are
		// refused.
		cancel()
		require.NoError(t, <-done)
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		sub.Close()
		e.register(t, registry.Entry{SPIFFEID: dbID})
		_, err = e.iss.Subscribe(t.Context(), self())
		require.ErrorIs(t, err, endpoint.ErrUnavailable)
		require.ErrorContains(t, err, "not running")
	})
}

func TestCloseWithoutRunFailsWaitingCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newIdleEnv(t, issuer.Config{})
		e.register(t, registry.Entry{SPIFFEID: webID})
		got := subscribeAsync(t, e.iss)
		synctest.Wait()
		require.NoError(t, e.iss.Close())
		err := <-got
		require.ErrorIs(t, err, endpoint.ErrUnavailable)
		require.ErrorContains(t, err, "not running")
	})
}
