package fedpoll

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// wait bounds every wait for something that must happen.
const wait = 15 * time.Second

// endpoint is an https_web bundle endpoint serving the document a test
// sets; an empty one is answered 503.
type endpoint struct {
	*httptest.Server
	roots *x509.CertPool // the roots its certificate chains to

	mu  sync.Mutex
	doc []byte
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		e.mu.Lock()
		doc := e.doc
		e.mu.Unlock()
		if doc == nil {
			http.Error(w, "gone fishing", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(doc)
	}))
	t.Cleanup(e.Close)
	e.roots = x509.NewCertPool()
	e.roots.AddCert(e.Certificate())
	return e
}

// serve has the endpoint serve a bundle of td with sequence number seq,
// or answer 503 for a seq of 0, and returns the bundle.
func (e *endpoint) serve(t *testing.T, td spiffeid.TrustDomain, seq uint64) *spiffebundle.Bundle {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if seq == 0 {
		e.doc = nil
		return nil
	}
	b := spiffebundle.FromX509Authorities(td, []*x509.Certificate{selfSigned(t)})
	b.SetSequenceNumber(seq)
	doc, err := b.Marshal()
	require.NoError(t, err)
	e.doc = doc
	return b
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// storedSeq returns the sequence number of the bundle of td in store, 0
// if none is stored.
func storedSeq(t *testing.T, store registry.BundleStore, td spiffeid.TrustDomain) uint64 {
	t.Helper()
	fb, err := store.GetBundle(t.Context(), td)
	if err != nil {
		require.ErrorIs(t, err, registry.ErrNotFound)
		return 0
	}
	b, err := spiffebundle.Parse(td, fb.Document)
	require.NoError(t, err)
	seq, _ := b.SequenceNumber()
	return seq
}

// poller is a Poller under test, running until the test ends.
type poller struct {
	*Poller
	store *memstore.Store
	logs  *logtest.Buffer
}

// newPoller returns a Poller of static over a fresh in-memory store,
// storing relationships too when stored is true, with https_web roots
// roots, polling every few milliseconds once it runs.
func newPoller(t *testing.T, static []Relationship, stored bool, roots *x509.CertPool) *poller {
	t.Helper()
	store := memstore.New(memstore.Config{})
	var logs logtest.Buffer
	cfg := Config{
		TrustDomain: ownTD, Bundles: store, Source: newTestTrust(t, ownTD), WebPKIRoots: roots,
		Refresh: 20 * time.Millisecond, Timeout: 5 * time.Second, PollInterval: 20 * time.Millisecond, Concurrency: 2,
		Logger: logs.Logger(),
	}
	if stored {
		cfg.Store = store
	}
	for _, r := range static {
		c, err := Check(ownTD, r, Stored(t.Context(), store))
		require.NoError(t, err)
		cfg.Static = append(cfg.Static, c)
	}
	p, err := New(t.Context(), cfg)
	require.NoError(t, err)
	return &poller{Poller: p, store: store, logs: &logs}
}

// startPoller is newPoller, running until the test ends.
func startPoller(t *testing.T, static []Relationship, stored bool, roots *x509.CertPool) *poller {
	t.Helper()
	p := newPoller(t, static, stored, roots)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// stats returns the counts of the relationship with td, if it is polled.
func (p *poller) stats(td spiffeid.TrustDomain) (Stats, bool) {
	for _, s := range p.Stats() {
		if s.TrustDomain == td {
			return s, true
		}
	}
	return Stats{}, false
}

// Fed rules 20, 22, 25: a relationship of the configuration is polled for
// good: each changed bundle is stored, a failed fetch is counted and logged
// and leaves the last good bundle, and a bundle whose sequence number goes
// backwards is stored with a warning.
func TestStaticRelationshipIsPolled(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the endpoint closes
	e := newEndpoint(t)
	e.serve(t, partnerTD, 5)
	p := startPoller(t, []Relationship{{TrustDomain: partnerTD, URL: e.URL + "/", Profile: ProfileHTTPSWeb, WebPKIRoots: e.roots}}, false, nil)
	require.Eventually(t, func() bool { return storedSeq(t, p.store, partnerTD) == 5 }, wait, 5*time.Millisecond)
	assert.Nil(t, p.Admin(), "no store, no management")

	e.serve(t, partnerTD, 0)
	require.Eventually(t, func() bool { s, _ := p.stats(partnerTD); return s.Failures > 0 }, wait, 5*time.Millisecond)
	assert.Equal(t, uint64(5), storedSeq(t, p.store, partnerTD), "the last good bundle stays")
	assert.True(t, p.logs.Contains("fetching a federated bundle failed; the last good bundle stays"))
	s, ok := p.stats(partnerTD)
	require.True(t, ok)
	assert.NotZero(t, s.Fetches)
	assert.False(t, s.LastFetch.IsZero())

	e.serve(t, partnerTD, 3)
	require.Eventually(t, func() bool { return storedSeq(t, p.store, partnerTD) == 3 }, wait, 5*time.Millisecond)
	assert.True(t, p.logs.Contains("the fetched bundle's sequence number is lower than the stored one's"))
}

// Property: New names in the log a stored bundle of a trust domain that no
// relationship polls, and fails when the stores cannot be read.
func TestNewNamesBundlesWithoutRelationship(t *testing.T) {
	store := memstore.New(memstore.Config{})
	doc, err := spiffebundle.New(partnerTD).Marshal()
	require.NoError(t, err)
	_, err = store.PutBundle(t.Context(), registry.FederatedBundle{TrustDomain: partnerTD, Document: doc})
	require.NoError(t, err)
	var logs logtest.Buffer
	cfg := Config{TrustDomain: ownTD, Store: store, Bundles: store, Logger: logs.Logger(), Concurrency: 1}
	_, err = New(t.Context(), cfg)
	require.NoError(t, err)
	assert.True(t, logs.Contains("a federated bundle without a federation relationship is kept"))

	cfg.Bundles = failingBundles{store}
	_, err = New(t.Context(), cfg)
	require.EqualError(t, err, "server: reading the federated bundles: store down")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = New(ctx, cfg)
	require.ErrorIs(t, err, context.Canceled)
	assert.ErrorContains(t, err, "server: reading the federation relationships")
}

// Property: the relationships of the store are polled as the admin API
// creates, changes and deletes them; those of the configuration are
// listed but cannot be changed there, and win over a stored one with the
// same trust domain; a relationship that cannot be polled is refused.
func TestStoredRelationshipsFollowTheStore(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the endpoints close
	e, moved, configured := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	e.serve(t, partnerTD, 1)
	thirdTD := spiffeid.RequireTrustDomainFromString("third.test")
	configured.serve(t, thirdTD, 1)
	roots := x509.NewCertPool()
	roots.AddCert(e.Certificate())
	roots.AddCert(moved.Certificate())
	p := startPoller(t, []Relationship{{TrustDomain: thirdTD, URL: configured.URL + "/", Profile: ProfileHTTPSWeb, WebPKIRoots: configured.roots}}, true, roots)
	a := p.Admin()
	require.NotNil(t, a)
	ctx := t.Context()

	rel := registry.FederationRelationship{TrustDomain: partnerTD, BundleEndpointURL: e.URL + "/", BundleEndpointProfile: registry.ProfileHTTPSWeb}
	got, err := a.CreateRelationship(ctx, rel)
	require.NoError(t, err)
	assert.False(t, got.Configured)
	require.Eventually(t, func() bool { return storedSeq(t, p.store, partnerTD) == 1 }, wait, 5*time.Millisecond, "polled without a restart")
	assert.True(t, p.logs.Contains("federation relationship added; polling its bundle endpoint"))

	list, err := a.Relationships(ctx)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, partnerTD, list[0].TrustDomain)
	assert.Equal(t, thirdTD, list[1].TrustDomain)
	assert.True(t, list[1].Configured)

	// The configuration's relationship is read-only here.
	_, err = a.CreateRelationship(ctx, registry.FederationRelationship{TrustDomain: thirdTD, BundleEndpointURL: "https://x.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	_, err = a.UpdateRelationship(ctx, registry.FederationRelationship{TrustDomain: thirdTD, BundleEndpointURL: "https://x.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.ErrorIs(t, err, admin.ErrFailedPrecondition)
	require.ErrorIs(t, a.DeleteRelationship(ctx, thirdTD), admin.ErrFailedPrecondition)
	// A stored one with its trust domain, written past the admin API, is
	// ignored and logged.
	_, err = p.store.CreateFederationRelationship(ctx, registry.FederationRelationship{TrustDomain: thirdTD, BundleEndpointURL: "https://x.test/", BundleEndpointProfile: registry.ProfileHTTPSWeb})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return p.logs.Contains("the server's configuration has one with the same trust domain, which wins")
	}, wait, 5*time.Millisecond)
	require.NoError(t, a.DeleteRelationship(ctx, thirdTD), "a shadowed stored one can be deleted")

	// Refused: a self-serving https_spiffe endpoint with nothing to
	// authenticate its first fetch.
	self := registry.FederationRelationship{TrustDomain: spiffeid.RequireTrustDomainFromString("self.test"), BundleEndpointURL: "https://self.test/",
		BundleEndpointProfile: registry.ProfileHTTPSSPIFFE, EndpointSPIFFEID: spiffeid.RequireFromString("spiffe://self.test/s")}
	_, err = a.CreateRelationship(ctx, self)
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.ErrorContains(t, err, `federation relationship with "self.test": a self-serving https_spiffe endpoint needs a bootstrap bundle`)
	_, err = a.CreateRelationship(ctx, registry.FederationRelationship{TrustDomain: partnerTD})
	require.ErrorIs(t, err, registry.ErrInvalid)
	// Written past the admin API, it is not polled, and logged.
	_, err = p.store.CreateFederationRelationship(ctx, self)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return p.logs.Contains("a federation relationship in the datastore is not polled") }, wait, 5*time.Millisecond)
	_, err = a.(adminserver.FederationRefresher).RefreshRelationship(ctx, self.TrustDomain)
	require.ErrorIs(t, err, registry.ErrInvalid)
	require.NoError(t, a.DeleteRelationship(ctx, self.TrustDomain))

	// A change of the endpoint restarts the polling there.
	moved.serve(t, partnerTD, 7)
	rel.BundleEndpointURL = moved.URL + "/"
	_, err = a.UpdateRelationship(ctx, rel)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return storedSeq(t, p.store, partnerTD) == 7 }, wait, 5*time.Millisecond)
	assert.True(t, p.logs.Contains("federation relationship changed; polling its bundle endpoint"))

	// A refresh on demand fetches now and says whether the bundle changed.
	moved.serve(t, partnerTD, 8)
	r, err := a.(adminserver.FederationRefresher).RefreshRelationship(ctx, partnerTD)
	require.NoError(t, err)
	assert.Equal(t, partnerTD, r.TrustDomain)
	assert.Equal(t, uint64(8), r.SequenceNumber)
	moved.serve(t, partnerTD, 0)
	_, err = a.(adminserver.FederationRefresher).RefreshRelationship(ctx, partnerTD)
	require.ErrorIs(t, err, admin.ErrUnavailable)
	assert.ErrorContains(t, err, "the stored bundle stays")
	_, err = a.(adminserver.FederationRefresher).RefreshRelationship(ctx, thirdTD)
	require.NoError(t, err, "the configuration's relationship refreshes too")
	_, err = a.(adminserver.FederationRefresher).RefreshRelationship(ctx, spiffeid.RequireTrustDomainFromString("none.test"))
	require.ErrorIs(t, err, registry.ErrNotFound)

	// Deleted: no longer polled; the bundle is kept.
	require.NoError(t, a.DeleteRelationship(ctx, partnerTD))
	require.Eventually(t, func() bool { _, polled := p.stats(partnerTD); return !polled }, wait, 5*time.Millisecond)
	assert.Equal(t, uint64(8), storedSeq(t, p.store, partnerTD))
	require.ErrorIs(t, a.DeleteRelationship(ctx, partnerTD), registry.ErrNotFound)
}

// Property: a stored relationship the poller has not started polling yet
// is refreshed through a watcher of its own.
func TestRefreshOfAStoredRelationshipNotPolledYet(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // first registered, last run: after the endpoint closes
	e := newEndpoint(t)
	e.serve(t, partnerTD, 4)
	p := newPoller(t, nil, true, e.roots) // not running
	rel := registry.FederationRelationship{TrustDomain: partnerTD, BundleEndpointURL: e.URL + "/", BundleEndpointProfile: registry.ProfileHTTPSWeb}
	_, err := p.store.CreateFederationRelationship(t.Context(), rel)
	require.NoError(t, err)
	r, err := p.Admin().(adminserver.FederationRefresher).RefreshRelationship(t.Context(), partnerTD)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), r.SequenceNumber)
	assert.Equal(t, uint64(4), storedSeq(t, p.store, partnerTD))
}

// Property: a fetch waits for a slot of its pool, and gives up when its
// context ends; a nil pool bounds nothing.
func TestFetchSlots(t *testing.T) {
	f := newFetchSlots(1)
	release, err := f.acquire(t.Context(), true)
	require.NoError(t, err)
	other, err := f.acquire(t.Context(), false)
	require.NoError(t, err, "the pools are apart")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	_, err = f.acquire(ctx, true)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	release()
	other()
	release, err = f.acquire(t.Context(), true)
	require.NoError(t, err)
	release()
	var none *fetchSlots
	release, err = none.acquire(t.Context(), true)
	require.NoError(t, err)
	release()
}
