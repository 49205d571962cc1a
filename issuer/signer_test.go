package issuer_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/issuer"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// remoteSigner signs as a node agent's server does: from a CSR that the
// request's key signs, with the active authorities of a real CA manager. It
// records its batches, and can be made to fail, to hold its calls until
// released, or to tamper with what it returns.
type remoteSigner struct {
	m *rotation.Manager

	fail atomic.Bool

	mu      sync.Mutex
	batches [][]spiffeid.ID // the SPIFFE IDs asked for, per call
	jwts    int
	hold    chan struct{} // when not nil, calls wait until it is closed
	started chan struct{} // receives a value when a held call starts
	tamper  func(req issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult
	short   bool // return one result too few
}

var _ issuer.Signer = (*remoteSigner)(nil)

func newRemoteSigner(t testing.TB) *remoteSigner {
	t.Helper()
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	return &remoteSigner{m: m}
}

func (s *remoteSigner) SignX509SVIDs(ctx context.Context, reqs []issuer.X509SVIDRequest) ([]issuer.X509SVIDResult, error) {
	s.mu.Lock()
	ids := make([]spiffeid.ID, len(reqs))
	for k, r := range reqs {
		ids[k] = r.Entry.SPIFFEID
	}
	s.batches = append(s.batches, ids)
	hold, started, tamper, short := s.hold, s.started, s.tamper, s.short
	s.mu.Unlock()
	if hold != nil {
		started <- struct{}{}
		select {
		case <-hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if s.fail.Load() {
		return nil, fmt.Errorf("%w: server unreachable", endpoint.ErrUnavailable)
	}
	a := s.m.X509Authority()
	out := make([]issuer.X509SVIDResult, len(reqs))
	for k, r := range reqs {
		csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, r.Key)
		if err != nil {
			return nil, err
		}
		out[k].Certificates, out[k].Err = a.SignX509SVID(ctx, ca.X509SVIDParams{
			CSR: csr, ID: r.Entry.SPIFFEID, DNSNames: r.Entry.DNSNames, TTL: r.TTL,
		})
		if tamper != nil {
			out[k] = tamper(r, out[k])
		}
	}
	if short {
		out = out[1:]
	}
	return out, nil
}

func (s *remoteSigner) SignJWTSVID(ctx context.Context, req issuer.JWTSVIDRequest) (string, error) {
	s.mu.Lock()
	s.jwts++
	s.mu.Unlock()
	if s.fail.Load() {
		return "", fmt.Errorf("%w: server unreachable", endpoint.ErrUnavailable)
	}
	return s.m.JWTAuthority().SignJWTSVID(ctx, ca.JWTSVIDParams{ID: req.Entry.SPIFFEID, Audience: req.Audience, TTL: req.TTL})
}

// sizes returns the size of every batch so far.
func (s *remoteSigner) sizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int, len(s.batches))
	for k, b := range s.batches {
		out[k] = len(b)
	}
	return out
}

func (s *remoteSigner) calls() int { return len(s.sizes()) }

func (s *remoteSigner) jwtCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.jwts
}

// holdCalls makes the next calls wait until the returned function runs.
func (s *remoteSigner) holdCalls() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hold := make(chan struct{})
	s.hold, s.started = hold, make(chan struct{}, 16)
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(hold)
	})
}

func (s *remoteSigner) waitStarted(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the signer was not called within 10s")
	}
}

// agentTrust is what a node agent knows of its trust domain: the bundle
// and its changes, the tainted CAs, but not which CA is active.
type agentTrust struct{ issuer.Trust }

func (agentTrust) ActiveX509CA() *x509.Certificate { return nil }

// newAgentEnv builds an issuer that signs nothing itself, as a node agent's,
// with s behind it.
func newAgentEnv(t testing.TB, s *remoteSigner, cfg issuer.Config) *env {
	t.Helper()
	cfg.Trust = agentTrust{issuer.TrustFromAuthority(s.m)}
	cfg.Signer = s
	return newEnv(t, cfg)
}

// noKeys is a CA that signs nothing: it has no active authorities.
type noKeys struct{ *rotation.Manager }

func (noKeys) X509Authority() *ca.X509Authority { return nil }
func (noKeys) JWTAuthority() *ca.JWTAuthority   { return nil }

// entryFor returns an entry of ours for the n-th test workload.
func entryFor(n int) registry.Entry {
	return registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, fmt.Sprintf("/w%d", n)), Hint: fmt.Sprintf("w%d", n)}
}

// requireGoodSVIDs checks that each SVID verifies against the snapshot's
// bundle and that its key is the leaf's.
func requireGoodSVIDs(t testing.TB, snap *endpoint.Snapshot) {
	t.Helper()
	require.NoError(t, snap.Validate())
	for _, raw := range snap.RawX509SVIDs {
		s := parseRaw(t, raw)
		id, _, err := x509svid.Verify(s.Certificates, snap.Bundles[0])
		require.NoError(t, err)
		assert.Equal(t, s.ID, id)
		pub := s.PrivateKey.Public().(interface{ Equal(crypto.PublicKey) bool })
		assert.True(t, pub.Equal(s.Certificates[0].PublicKey), "the leaf certifies the SVID's own key")
	}
}

func TestSignerBatchesACallersSVIDs(t *testing.T) {
	s := newRemoteSigner(t)
	e := newAgentEnv(t, s, issuer.Config{X509SVIDTTL: 10 * time.Minute})
	for n := range 5 {
		e.register(t, entryFor(n))
	}
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	// Five SVIDs due at once: one Signer call.
	assert.Equal(t, []int{5}, s.sizes())
	snap := sub.Snapshot()
	require.Len(t, snap.RawX509SVIDs, 5)
	requireGoodSVIDs(t, snap)
	leaf := rawLeaf(t, snap.RawX509SVIDs[0])
	assert.InDelta(t, 10*time.Minute, leaf.NotAfter.Sub(leaf.NotBefore), float64(time.Minute), "the TTL reaches the signer")

	// A second caller is served from the cache.
	again, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer again.Close()
	assert.Equal(t, snap.RawX509SVIDs, again.Snapshot().RawX509SVIDs)
	assert.Equal(t, 1, s.calls())
}

func TestSignerMaxBatch(t *testing.T) {
	s := newRemoteSigner(t)
	e := newAgentEnv(t, s, issuer.Config{MaxBatch: 2})
	for n := range 5 {
		e.register(t, entryFor(n))
	}
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, []int{2, 2, 1}, s.sizes())
	requireGoodSVIDs(t, sub.Snapshot())
}

func TestSignerCARotationReMintsInOneBatch(t *testing.T) {
	// With a Trust that knows the active CA, a rotation re-mints every
	// SVID in one batch.
	s := newRemoteSigner(t)
	e := newEnv(t, issuer.Config{Trust: issuer.TrustFromAuthority(s.m), Signer: s})
	e.ca = s.m
	for n := range 4 {
		e.register(t, entryFor(n))
	}
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	require.Equal(t, []int{4}, s.sizes())

	newCA := e.rotate(t)
	require.Eventually(t, func() bool {
		for _, svid := range sub.Snapshot().RawX509SVIDs {
			if issuedBy(parseRaw(t, svid)) != newCA {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []int{4, 4}, s.sizes())
	requireGoodSVIDs(t, sub.Snapshot())
}

// storeWith returns a memstore holding the given entries, with our parent
// and uid unless set.
func storeWith(t testing.TB, entries ...registry.Entry) *memstore.Store {
	t.Helper()
	store := memstore.New(memstore.Config{})
	for _, e := range entries {
		if e.ParentID.IsZero() {
			e.ParentID = parentID
		}
		if e.Selectors == nil {
			e.Selectors = []attest.Selector{ourUID}
		}
		_, err := store.Create(t.Context(), e)
		require.NoError(t, err)
	}
	return store
}

func TestPreMint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		theirs := registry.Entry{SPIFFEID: dbID, Selectors: []attest.Selector{otherUID}}
		store := storeWith(t, entryFor(0), entryFor(1), theirs)
		e := newAgentEnv(t, s, issuer.Config{Registry: store, PreMint: true, X509SVIDTTL: 10 * time.Minute})

		// Every entry, whoever it is for, is minted up front, in one batch.
		synctest.Wait()
		require.Equal(t, []int{3}, s.sizes())
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		require.Len(t, sub.Snapshot().RawX509SVIDs, 2)
		assert.Equal(t, 1, s.calls(), "the first fetch is served from memory")

		// A new entry is pre-minted as soon as the issuer sees it.
		e.register(t, registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/late"), Selectors: []attest.Selector{otherUID}})
		synctest.Wait()
		require.Equal(t, []int{3, 1}, s.sizes())

		// A deleted entry is dropped: the re-mint at half life leaves it out.
		all, _, err := store.List(t.Context(), registry.Filter{BySPIFFEID: dbID}, registry.Page{})
		require.NoError(t, err)
		require.Len(t, all, 1)
		e.remove(t, all[0])
		synctest.Wait()
		time.Sleep(6 * time.Minute)
		synctest.Wait()
		// The stream's two first, then the others': /late; not the deleted
		// entry.
		sizes := s.sizes()
		require.GreaterOrEqual(t, len(sizes), 4)
		assert.Equal(t, []int{2, 1}, sizes[len(sizes)-2:], "w0 and w1, then /late; not the deleted entry")
		assert.NotContains(t, s.batches[len(s.batches)-1], dbID)
		assert.NotContains(t, s.batches[len(s.batches)-2], dbID)
	})
}

// With a PreMintLimit, only that many entries, the first by ID, are minted
// ahead of need; a caller's entries beyond them are minted when it asks.
func TestPreMintLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		var entries []registry.Entry
		for n := range 5 {
			e := entryFor(n)
			e.Selectors = []attest.Selector{otherUID}
			entries = append(entries, e)
		}
		mine := entryFor(9)
		store := storeWith(t, append(entries, mine)...)
		all, _, err := store.List(t.Context(), registry.Filter{}, registry.Page{})
		require.NoError(t, err)
		slices.SortFunc(all, func(a, b registry.Entry) int { return strings.Compare(a.ID, b.ID) })
		var first []spiffeid.ID
		for _, e := range all[:2] {
			first = append(first, e.SPIFFEID)
		}
		e := newAgentEnv(t, s, issuer.Config{Registry: store, PreMint: true, PreMintLimit: 2, X509SVIDTTL: 10 * time.Minute})
		synctest.Wait()
		require.Len(t, s.batches, 1)
		assert.ElementsMatch(t, first, s.batches[0], "the two first entries by ID")

		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		require.Len(t, sub.Snapshot().RawX509SVIDs, 1, "the caller's own entry, minted when it asks if not ahead of need")
		if !slices.Contains(first, mine.SPIFFEID) {
			require.Len(t, s.batches, 2)
			assert.Equal(t, []spiffeid.ID{mine.SPIFFEID}, s.batches[1])
		}
	})
}

func TestPreMintParentID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		other := entryFor(1)
		other.ParentID = spiffeid.RequireFromPath(td, "/elsewhere")
		nested := entryFor(2)
		nested.ParentID = entryFor(0).SPIFFEID
		store := storeWith(t, entryFor(0), other, nested)
		newAgentEnv(t, s, issuer.Config{Registry: store, PreMint: true, ParentID: parentID})
		synctest.Wait()
		// Only the issuer's own entries: not another parent's, nor those
		// nested under its entries.
		require.Len(t, s.batches, 1)
		assert.Equal(t, []spiffeid.ID{entryFor(0).SPIFFEID}, s.batches[0])
	})
}

func TestSignerFailureKeepsSVIDUntilExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		e := newAgentEnv(t, s, issuer.Config{X509SVIDTTL: 10 * time.Minute})
		e.register(t, registry.Entry{SPIFFEID: webID})
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		first := sub.Snapshot().RawX509SVIDs[0]
		leaf := rawLeaf(t, first)

		// Past half its life with the signer down: the SVID, still valid,
		// stays, and the signer is retried with backoff, not every second.
		s.fail.Store(true)
		time.Sleep(time.Until(leaf.NotAfter) - 3*time.Minute)
		synctest.Wait()
		assert.Same(t, first, sub.Snapshot().RawX509SVIDs[0])
		retries := s.calls() - 1
		assert.Greater(t, retries, 3)
		assert.Less(t, retries, 30, "about 2 minutes of failures; a retry every second would be 120")

		// A new caller of the entry is served the valid SVID from memory; a
		// new entry cannot be minted, and costs the caller only its SVID.
		again, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		again.Close()
		e.register(t, registry.Entry{SPIFFEID: dbID})
		again, err = e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		require.Len(t, again.Snapshot().RawX509SVIDs, 1)
		assert.Same(t, first, again.Snapshot().RawX509SVIDs[0])
		again.Close()
		e.remove(t, mustGet(t, e.store, dbID))

		// The retries come closer as the expiry nears: a server back 20s
		// before it is used in time.
		time.Sleep(time.Until(leaf.NotAfter) - 20*time.Second)
		synctest.Wait()
		assert.Same(t, first, sub.Snapshot().RawX509SVIDs[0])
		s.fail.Store(false)
		time.Sleep(19 * time.Second)
		synctest.Wait()
		now := sub.Snapshot().RawX509SVIDs[0]
		assert.NotEqual(t, leaf.SerialNumber, rawLeaf(t, now).SerialNumber)
		assert.True(t, time.Now().Before(leaf.NotAfter))
	})
}

func mustGet(t testing.TB, store registry.Store, id spiffeid.ID) registry.Entry {
	t.Helper()
	all, _, err := store.List(t.Context(), registry.Filter{BySPIFFEID: id}, registry.Page{})
	require.NoError(t, err)
	require.Len(t, all, 1)
	return all[0]
}

func TestSignerCallHoldsNoLock(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // the mint cancelled by Close ends too
	s := newRemoteSigner(t)
	e := newAgentEnv(t, s, issuer.Config{PreMint: true})
	e.register(t, registry.Entry{SPIFFEID: webID})
	require.Eventually(t, func() bool { return s.calls() == 1 }, 10*time.Second, 10*time.Millisecond)

	// The background goroutine is stuck in the signer, pre-minting a new
	// entry of another workload ...
	release := s.holdCalls()
	defer release()
	e.register(t, registry.Entry{SPIFFEID: dbID, Selectors: []attest.Selector{otherUID}})
	s.waitStarted(t)

	// ... and every caller whose SVID is cached is served meanwhile.
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, webID, sub.Snapshot().RawX509SVIDs[0].ID)
	jwts, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.NoError(t, err)
	require.Len(t, jwts, 1)

	// Close cancels the call in flight and waits for it.
	require.NoError(t, e.iss.Close())
}

func TestSignerOneMintPerEntry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		e := newAgentEnv(t, s, issuer.Config{})
		e.register(t, registry.Entry{SPIFFEID: webID})
		release := s.holdCalls()

		// Two callers need the same new SVID: one mints, the other waits
		// for that mint instead of starting its own.
		subs := make(chan endpoint.Subscription, 2)
		var wg sync.WaitGroup
		subscribe := func() {
			sub, err := e.iss.Subscribe(t.Context(), self())
			assert.NoError(t, err)
			subs <- sub
		}
		wg.Go(subscribe)
		s.waitStarted(t)
		wg.Go(subscribe)
		synctest.Wait()
		release()
		wg.Wait()
		a, b := <-subs, <-subs
		defer a.Close()
		defer b.Close()
		assert.Same(t, a.Snapshot().RawX509SVIDs[0], b.Snapshot().RawX509SVIDs[0])
		assert.Equal(t, []int{1}, s.sizes())
	})
}

func TestSignerGoneCallerDoesNotFailTheMint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		e := newAgentEnv(t, s, issuer.Config{})
		e.register(t, registry.Entry{SPIFFEID: webID})
		release := s.holdCalls()
		ctx, cancel := context.WithCancel(t.Context())
		errs := make(chan error, 1)
		go func() {
			_, err := e.iss.Subscribe(ctx, self())
			errs <- err
		}()
		s.waitStarted(t)
		cancel()
		require.ErrorIs(t, <-errs, context.Canceled)
		release()
		synctest.Wait()
		// The mint went on without its caller: the next one is served from
		// memory.
		sub, err := e.iss.Subscribe(t.Context(), self())
		require.NoError(t, err)
		defer sub.Close()
		assert.Equal(t, 1, s.calls())
	})
}

func TestSignerResultsChecked(t *testing.T) {
	// A Signer may be a remote server: what it returns is checked before a
	// workload gets it.
	otherCA, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	for _, tt := range []struct {
		name   string
		tamper func(req issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult
		short  bool
		now    func() time.Time
		want   string
	}{
		{name: "the request fails", want: "refused", tamper: func(_ issuer.X509SVIDRequest, _ issuer.X509SVIDResult) issuer.X509SVIDResult {
			return issuer.X509SVIDResult{Err: errors.New("refused")}
		}},
		{name: "fewer results than requests", short: true, want: "0 results for 1 requests"},
		{name: "leaf without its CA", want: "1 certificates", tamper: func(_ issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult {
			res.Certificates = res.Certificates[:1]
			return res
		}},
		{name: "nil certificate", want: "nil certificate", tamper: func(_ issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult {
			res.Certificates[1] = nil
			return res
		}},
		{name: "leaf for another key", want: "another key", tamper: func(req issuer.X509SVIDRequest, _ issuer.X509SVIDResult) issuer.X509SVIDResult {
			chain, err := otherCA.X509Authority().SignX509SVID(context.Background(), ca.X509SVIDParams{PublicKey: otherKey.Public(), ID: req.Entry.SPIFFEID})
			return issuer.X509SVIDResult{Certificates: chain, Err: err}
		}},
		{name: "leaf for another identity", want: "leaf for spiffe://example.org/db", tamper: func(req issuer.X509SVIDRequest, _ issuer.X509SVIDResult) issuer.X509SVIDResult {
			chain, err := otherCA.X509Authority().SignX509SVID(context.Background(), ca.X509SVIDParams{PublicKey: req.Key.Public(), ID: dbID})
			return issuer.X509SVIDResult{Certificates: chain, Err: err}
		}},
		{name: "CA certificate as the leaf", want: "leaf for spiffe://example.org, want", tamper: func(_ issuer.X509SVIDRequest, _ issuer.X509SVIDResult) issuer.X509SVIDResult {
			return issuer.X509SVIDResult{Certificates: []*x509.Certificate{otherCA.X509Authority().Certificate(), otherCA.X509Authority().Certificate()}}
		}},
		{name: "second certificate did not sign the leaf", want: "did not sign", tamper: func(_ issuer.X509SVIDRequest, res issuer.X509SVIDResult) issuer.X509SVIDResult {
			res.Certificates[1] = otherCA.X509Authority().Certificate()
			return res
		}},
		{name: "expired leaf", want: "expired", now: func() time.Time { return time.Now().Add(2 * time.Hour) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newRemoteSigner(t)
			s.tamper, s.short = tt.tamper, tt.short
			e := newAgentEnv(t, s, issuer.Config{Now: tt.now})
			e.register(t, registry.Entry{SPIFFEID: webID})
			_, err := e.iss.Subscribe(t.Context(), self())
			require.ErrorContains(t, err, "issuer: minting an X509-SVID for entry")
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestRemoteJWTSVIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newRemoteSigner(t)
		e := newAgentEnv(t, s, issuer.Config{JWTSVIDTTL: 4 * time.Minute})
		e.register(t, registry.Entry{SPIFFEID: webID})
		fetch := func() (string, error) {
			svids, err := e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"db"}})
			if err != nil {
				return "", err
			}
			return svids[0].Token, nil
		}
		first, err := fetch()
		require.NoError(t, err)
		_, err = jwtsvid.ParseAndValidate(first, s.m.Bundle(), []string{"db"})
		require.NoError(t, err)

		// No active key is known here: the token is reused until half its
		// life (WAPI rule 12).
		again, err := fetch()
		require.NoError(t, err)
		assert.Equal(t, first, again)
		time.Sleep(2*time.Minute + time.Second)
		second, err := fetch()
		require.NoError(t, err)
		assert.NotEqual(t, first, second)
		assert.Equal(t, 2, s.jwtCalls())

		// The signer down: the cached token is served while comfortably
		// valid (until three quarters of its life), then the caller gets the
		// failure.
		s.fail.Store(true)
		time.Sleep(2*time.Minute + time.Second)
		stale, err := fetch()
		require.NoError(t, err)
		assert.Equal(t, second, stale)
		time.Sleep(time.Minute)
		_, err = fetch()
		require.ErrorIs(t, err, endpoint.ErrUnavailable)
		require.ErrorContains(t, err, "issuer: minting a JWT-SVID")
	})
}

func TestLocalSignerWithoutAuthorities(t *testing.T) {
	// A local CA without active authorities: every mint reports that the
	// issuer cannot answer now.
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	e := newEnv(t, issuer.Config{Trust: issuer.TrustFromAuthority(noKeys{m}), Signer: issuer.NewLocalSigner(noKeys{m})})
	e.register(t, registry.Entry{SPIFFEID: webID})
	_, err = e.iss.Subscribe(t.Context(), self())
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorContains(t, err, "no active X.509 CA")
	_, err = e.iss.FetchJWTSVIDs(t.Context(), self(), endpoint.JWTSVIDParams{Audience: []string{"x"}})
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorContains(t, err, "no active JWT key")
}

func TestSignerBatchSpansEntryChanges(t *testing.T) {
	// A registry sync that brings several entries to an open stream mints
	// them in one batch. The store does not notify, so that the three
	// writes reach the issuer in one sync.
	s := newRemoteSigner(t)
	e := newAgentEnv(t, s, issuer.Config{Registry: quietStore{memstore.New(memstore.Config{})}, PollInterval: time.Hour})
	e.register(t, entryFor(0))
	sub, err := e.iss.Subscribe(t.Context(), self())
	require.NoError(t, err)
	defer sub.Close()
	<-sub.Changed()
	for n := 1; n <= 3; n++ {
		entry := entryFor(n)
		entry.ParentID, entry.Selectors = parentID, []attest.Selector{ourUID}
		_, err := e.store.Create(t.Context(), entry)
		require.NoError(t, err)
	}
	require.NoError(t, e.iss.Sync(t.Context()))
	require.Eventually(t, func() bool { return len(sub.Snapshot().RawX509SVIDs) == 4 }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, []int{1, 3}, s.sizes())
}

// quietStore hides the store's registry.Notifier: the issuer sees changes
// only on Sync and at each poll.
type quietStore struct{ registry.Store }
