package server_test

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// manyEndpoints is one https_web server standing for many bundle
// endpoints: /live/<trust domain> serves that trust domain's bundle (with
// the sequence number of the moment), /dead/<n> never answers. It counts
// the fetches under way, and keeps the most it saw at once.
type manyEndpoints struct {
	*httptest.Server
	roots   *x509.CertPool
	release chan struct{}
	seq     atomic.Uint64
	delay   time.Duration // before each live answer, so that fetches overlap

	inFlight, maxInFlight atomic.Int64
	mu                    sync.Mutex
	bundles               map[string]*spiffebundle.Bundle
}

func newManyEndpoints(t testing.TB, live []spiffeid.TrustDomain) *manyEndpoints {
	m := &manyEndpoints{release: make(chan struct{}), bundles: map[string]*spiffebundle.Bundle{}}
	for _, td := range live {
		m.bundles[td.Name()] = spiffebundle.FromX509Authorities(td, []*x509.Certificate{selfSigned(t, td.Name())})
	}
	m.seq.Store(1)
	m.Server = httptest.NewUnstartedServer(http.HandlerFunc(m.serve))
	m.StartTLS()
	t.Cleanup(m.Close)
	t.Cleanup(func() { close(m.release) }) // runs first: frees hanging handlers
	m.roots = x509.NewCertPool()
	m.roots.AddCert(m.Certificate())
	return m
}

func (m *manyEndpoints) serve(w http.ResponseWriter, r *http.Request) {
	n := m.inFlight.Add(1)
	defer m.inFlight.Add(-1)
	for {
		top := m.maxInFlight.Load()
		if n <= top || m.maxInFlight.CompareAndSwap(top, n) {
			break
		}
	}
	if strings.HasPrefix(r.URL.Path, "/dead/") {
		select {
		case <-r.Context().Done():
		case <-m.release:
		}
		return
	}
	select {
	case <-time.After(m.delay):
	case <-r.Context().Done():
		return
	}
	m.mu.Lock()
	b, ok := m.bundles[strings.TrimPrefix(r.URL.Path, "/live/")]
	m.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	b = b.Clone()
	b.SetSequenceNumber(m.seq.Load())
	doc, err := b.Marshal()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// manyRelationships returns live relationships with endpoints of m and
// dead ones that never answer, the trust domains of the live ones.
func manyRelationships(t testing.TB, live, dead int) ([]spiffeid.TrustDomain, *manyEndpoints, []server.Relationship) {
	var tds []spiffeid.TrustDomain
	for i := range live {
		tds = append(tds, spiffeid.RequireTrustDomainFromString(fmt.Sprintf("live%03d.test", i)))
	}
	m := newManyEndpoints(t, tds)
	var rels []server.Relationship
	for _, td := range tds {
		rels = append(rels, server.Relationship{TrustDomain: td, URL: m.URL + "/live/" + td.Name(), Profile: server.ProfileHTTPSWeb, WebPKIRoots: m.roots})
	}
	for i := range dead {
		td := spiffeid.RequireTrustDomainFromString(fmt.Sprintf("dead%03d.test", i))
		rels = append(rels, server.Relationship{TrustDomain: td, URL: fmt.Sprintf("%s/dead/%d", m.URL, i), Profile: server.ProfileHTTPSWeb, WebPKIRoots: m.roots})
	}
	return tds, m, rels
}

// storedSeqs returns how many of tds have a stored bundle with a sequence
// number of at least seq.
func storedSeqs(t testing.TB, s *nodetest.Server, tds []spiffeid.TrustDomain, seq uint64) int {
	n := 0
	for _, td := range tds {
		if b := storedBundle(t, s, td); b != nil {
			if got, ok := b.SequenceNumber(); ok && got >= seq {
				n++
			}
		}
	}
	return n
}

// Two hundred federated trust domains on one server, a tenth of them dead
// (their endpoints accept and never answer, for longer than the test): the
// live bundles are all fetched, and never more first fetches are under way
// at once than Config.FederationConcurrency.
func TestManyFederations(t *testing.T) {
	const live, dead, bound = 180, 20, 32
	tds, m, rels := manyRelationships(t, live, dead)
	m.delay = 100 * time.Millisecond // unbounded, the 200 fetches would all be under way at once
	s := start(t, server.Config{
		Federation:            rels,
		FederationConcurrency: bound,
		FederationTimeout:     10 * time.Minute, // the dead hold their fetch for the whole test
		FederationRefresh:     time.Hour,
	})
	require.Eventually(t, func() bool { return storedSeqs(t, s, tds, 1) == live }, 60*time.Second, 20*time.Millisecond,
		"every live bundle is stored although %d endpoints hang", dead)
	t.Logf("at most %d fetches under way at once", m.maxInFlight.Load())
	// Every fetch here is a first one, in the probation pool.
	assert.LessOrEqual(t, m.maxInFlight.Load(), int64(bound), "fetches under way at once")
	assert.GreaterOrEqual(t, m.maxInFlight.Load(), int64(dead), "the dead hang at once")
	for i := range dead {
		td := spiffeid.RequireTrustDomainFromString(fmt.Sprintf("dead%03d.test", i))
		assert.Nil(t, storedBundle(t, s, td))
	}
}

// Endpoints that never answered keep their own pool: more dead endpoints
// than the bound, each holding its fetch for longer than the test, never
// keep the healthy relationships from following their bundles' changes.
func TestDeadEndpointsKeptApart(t *testing.T) {
	const live, dead, bound = 24, 12, 4 // dead > bound: sharing one pool, the live ones would wait for good
	tds, m, rels := manyRelationships(t, live, dead)
	s := start(t, server.Config{
		Federation:            rels[:live],
		FederationConcurrency: bound,
		FederationTimeout:     10 * time.Minute,
		FederationRefresh:     50 * time.Millisecond,
		FederationWebPKIRoots: m.roots,
	})
	require.Eventually(t, func() bool { return storedSeqs(t, s, tds, 1) == live }, 60*time.Second, 20*time.Millisecond)
	for _, r := range rels[live:] {
		_, err := s.Admin.CreateFederationRelationship(t.Context(), registry.FederationRelationship{
			TrustDomain: r.TrustDomain, BundleEndpointURL: r.URL, BundleEndpointProfile: registry.ProfileHTTPSWeb,
		})
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return m.inFlight.Load() >= bound }, 60*time.Second, 20*time.Millisecond,
		"the dead endpoints fill their pool")
	for seq := uint64(2); seq <= 3; seq++ {
		m.seq.Store(seq)
		require.Eventually(t, func() bool { return storedSeqs(t, s, tds, seq) == live }, 60*time.Second, 20*time.Millisecond,
			"sequence %d of every live bundle", seq)
	}
	assert.LessOrEqual(t, m.maxInFlight.Load(), int64(2*bound), "fetches under way at once: both pools")
}

func TestFederationConcurrencyInvalid(t *testing.T) {
	_, err := server.New(t.Context(), server.Config{TrustDomain: td, FederationConcurrency: -1})
	require.ErrorContains(t, err, "FederationConcurrency must not be negative")
}

// BenchmarkManyFederations measures a server's start to the moment every
// live bundle of 200 federated trust domains is stored, a tenth of them
// dead (never answering) and the endpoints answering at once.
func BenchmarkManyFederations(b *testing.B) {
	tds, _, rels := manyRelationships(b, 180, 20)
	for b.Loop() {
		s := nodetest.StartServerIn(b, b.TempDir(), server.Config{
			Federation:        rels,
			FederationTimeout: 10 * time.Minute,
			FederationRefresh: time.Hour,
		})
		for storedSeqs(b, s, tds, 1) < len(tds) {
			time.Sleep(10 * time.Millisecond)
		}
		b.StopTimer()
		s.Stop()
		b.StartTimer()
	}
}
