package issuer_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestReMintAtHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, issuer.Config{X509SVIDTTL: 10 * time.Minute})
		e.register(t, registry.Entry{SPIFFEID: webID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		<-sub.Changed() // the first view
		first := rawLeaf(t, sub.Snapshot().RawX509SVIDs[0])

		// Just before half its life (NotBefore is backdated), nothing.
		half := first.NotBefore.Add(first.NotAfter.Sub(first.NotBefore) / 2)
		time.Sleep(time.Until(half) - time.Second)
		synctest.Wait()
		select {
		case <-sub.Changed():
			t.Fatal("re-minted too early")
		default:
		}

		time.Sleep(2 * time.Second)
		synctest.Wait()
		<-sub.Changed()
		second := rawLeaf(t, sub.Snapshot().RawX509SVIDs[0])
		assert.NotEqual(t, first.SerialNumber, second.SerialNumber)
		assert.True(t, second.NotAfter.After(first.NotAfter))
	})
}

func TestSubscribeDenied(t *testing.T) {
	e := newEnv(t, issuer.Config{})
	e.register(t, registry.Entry{SPIFFEID: webID})
	for _, tt := range []struct {
		name   string
		caller endpoint.Caller
	}{
		// WE rule 5: only a caller the kernel identified can be attested.
		{"no kernel credentials", endpoint.Caller{PID: -1, UID: -1, GID: -1}},
		// Our PID claimed with another uid: the attestor sees the mismatch,
		// so a process of another uid never gets our identity.
		{"uid differs from the process's", endpoint.Caller{PID: self().PID, UID: self().UID + 4242, GID: self().GID}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.iss.Subscribe(t.Context(), tt.caller)
			require.ErrorIs(t, err, endpoint.ErrNoIdentity)
			_, err = e.iss.FetchJWTSVIDs(t.Context(), tt.caller, endpoint.JWTSVIDParams{Audience: []string{"x"}})
			require.ErrorIs(t, err, endpoint.ErrNoIdentity)
		})
	}
}

// failingAttestor fails every attestation with err.
type failingAttestor struct{ err error }

func (a failingAttestor) Attest(context.Context, attest.Workload) (attest.Selectors, error) {
	return attest.Selectors{}, a.err
}

func TestAttestorFailure(t *testing.T) {
	e := newEnv(t, issuer.Config{Attestor: failingAttestor{errors.New("proc unreadable")}})
	_, err := e.iss.Subscribe(t.Context(), self())
	require.ErrorIs(t, err, endpoint.ErrUnavailable)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = e.iss.Subscribe(ctx, self())
	require.ErrorIs(t, err, context.Canceled)
}

func TestFederatedBundles(t *testing.T) {
	foreign := spiffeid.RequireTrustDomainFromString("partner.test")
	missing := spiffeid.RequireTrustDomainFromString("missing.test")
	other, err := rotation.New(t.Context(), rotation.Config{TrustDomain: foreign})
	require.NoError(t, err)
	e := newEnv(t, issuer.Config{Federation: spiffebundle.NewSet(other.Bundle())})
	e.register(t, registry.Entry{SPIFFEID: webID, FederatesWith: []spiffeid.TrustDomain{foreign, missing}})
	e.register(t, registry.Entry{SPIFFEID: dbID, FederatesWith: []spiffeid.TrustDomain{foreign}, Hint: "db"})

	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	snap := sub.Snapshot()
	require.NoError(t, snap.Validate())
	require.Len(t, snap.Bundles, 2, "own and partner.test once; missing.test has no bundle")
	assert.Equal(t, td, snap.Bundles[0].TrustDomain())
	assert.Equal(t, foreign, snap.Bundles[1].TrustDomain())
	// Default identity first: the order is stable (by SPIFFE ID).
	assert.Equal(t, dbID, snap.RawX509SVIDs[0].ID)
}

func TestDuplicateHintsSkipped(t *testing.T) {
	// WAPI rule 8: hints are unique within a response.
	e := newEnv(t, issuer.Config{})
	e.register(t, registry.Entry{SPIFFEID: webID, Hint: "main"})
	e.register(t, registry.Entry{SPIFFEID: dbID, Hint: "main"})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	require.Len(t, sub.Snapshot().RawX509SVIDs, 1)
	assert.Equal(t, dbID, sub.Snapshot().RawX509SVIDs[0].ID)

	jwts, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.NoError(t, err)
	require.Len(t, jwts, 1)
}

func TestMintFailure(t *testing.T) {
	// An entry of another trust domain, which the CA refuses to sign: it
	// costs the caller only that SVID, X.509 or JWT.
	e := newEnv(t, issuer.Config{})
	e.register(t, registry.Entry{SPIFFEID: webID})
	e.register(t, registry.Entry{SPIFFEID: spiffeid.RequireFromString("spiffe://elsewhere.test/web")})
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	require.Len(t, sub.Snapshot().RawX509SVIDs, 1)
	assert.Equal(t, webID, sub.Snapshot().RawX509SVIDs[0].ID)
	jwts, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.NoError(t, err)
	require.Len(t, jwts, 1)
	assert.Equal(t, webID, jwts[0].ID)
}

func TestNewRejectsIncompleteConfig(t *testing.T) {
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	trust, signer := issuer.TrustFromAuthority(m), issuer.NewLocalSigner(m)
	store := memstore.New(memstore.Config{})
	a := failingAttestor{}
	for _, tt := range []struct {
		name string
		cfg  issuer.Config
		want string
	}{
		{"no trust", issuer.Config{Signer: signer, Registry: store, Attestor: a}, "Config.Trust is required"},
		{"no signer", issuer.Config{Trust: trust, Registry: store, Attestor: a}, "Config.Signer is required"},
		{"no registry", issuer.Config{Trust: trust, Signer: signer, Attestor: a}, "Config.Registry is required"},
		{"no attestor", issuer.Config{Trust: trust, Signer: signer, Registry: store}, "Config.Attestor is required"},
		{"no bundle", issuer.Config{Trust: noBundle{trust}, Signer: signer, Registry: store, Attestor: a}, "no bundle"},
		{"negative TTL", issuer.Config{Trust: trust, Signer: signer, Registry: store, Attestor: a, X509SVIDTTL: -1}, "negative"},
		{"negative batch", issuer.Config{Trust: trust, Signer: signer, Registry: store, Attestor: a, MaxBatch: -1}, "negative"},
		{"registry fails", issuer.Config{Trust: trust, Signer: signer, Registry: brokenStore{store}, Attestor: a}, "indexing the registry"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := issuer.New(t.Context(), tt.cfg)
			require.ErrorContains(t, err, "issuer: ")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// noBundle is a Trust without a bundle.
type noBundle struct{ issuer.Trust }

func (noBundle) Bundle() *spiffebundle.Bundle { return nil }

// brokenStore is a registry that cannot be read.
type brokenStore struct{ registry.Store }

func (brokenStore) List(context.Context, registry.Filter, registry.Page) ([]registry.Entry, string, error) {
	return nil, "", errors.New("disk on fire")
}

// flakyCA is the real CA manager, except that its X.509 CA can be switched
// off, as if the CA were down.
type flakyCA struct {
	*rotation.Manager
	down atomic.Bool
}

func (f *flakyCA) X509Authority() *ca.X509Authority {
	if f.down.Load() {
		return nil
	}
	return f.Manager.X509Authority()
}

func TestCADownKeepsValidSVID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
		require.NoError(t, err)
		flaky := &flakyCA{Manager: m}
		e := newEnv(t, issuer.Config{Trust: issuer.TrustFromAuthority(flaky), Signer: issuer.NewLocalSigner(flaky), X509SVIDTTL: 10 * time.Minute})
		e.register(t, registry.Entry{SPIFFEID: webID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		first := sub.Snapshot().RawX509SVIDs[0]

		// Past half its life with the CA down: the SVID, still valid, stays.
		flaky.down.Store(true)
		time.Sleep(6 * time.Minute)
		synctest.Wait()
		assert.Same(t, first, sub.Snapshot().RawX509SVIDs[0])
		// A new entry cannot be minted at all: a new caller is served the
		// other SVID meanwhile.
		e.register(t, registry.Entry{SPIFFEID: dbID, Selectors: []attest.Selector{ourUID, {Type: "unix", Value: "gid:" + strconv.Itoa(self().GID)}}})
		again, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		require.Len(t, again.Snapshot().RawX509SVIDs, 1)
		assert.Same(t, first, again.Snapshot().RawX509SVIDs[0])
		again.Close()

		// Back up: the next retry re-mints.
		flaky.down.Store(false)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		require.Len(t, sub.Snapshot().RawX509SVIDs, 2)
		assert.NotSame(t, first, sub.Snapshot().RawX509SVIDs[1])
	})
}
