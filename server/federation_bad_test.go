package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/pemutil"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// fakeEndpoint is an https_web bundle endpoint whose answer a test picks.
type fakeEndpoint struct {
	*httptest.Server
	roots    *x509.CertPool // the roots its certificate chains to
	requests atomic.Int64
	release  chan struct{}

	mu   sync.Mutex
	mode string
	doc  []byte
}

func newFakeEndpoint(t *testing.T) *fakeEndpoint {
	f := &fakeEndpoint{release: make(chan struct{})}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.StartTLS()
	t.Cleanup(f.Close)
	t.Cleanup(func() { close(f.release) }) // runs first: frees hanging handlers
	f.roots = x509.NewCertPool()
	f.roots.AddCert(f.Certificate())
	return f
}

func (f *fakeEndpoint) set(mode string, doc []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.doc = mode, doc
}

func (f *fakeEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.mu.Lock()
	mode, doc := f.mode, f.doc
	f.mu.Unlock()
	switch mode {
	case "hang":
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
		return
	case "status":
		http.Error(w, "gone fishing", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

// awaitPolls waits until the server has finished at least one poll that
// started after the call.
func (f *fakeEndpoint) awaitPolls(t *testing.T) {
	t.Helper()
	n := f.requests.Load()
	require.Eventually(t, func() bool { return f.requests.Load() >= n+2 }, 15*time.Second, 5*time.Millisecond)
}

func partnerDoc(t *testing.T, seq uint64, cn string) ([]byte, *spiffebundle.Bundle) {
	t.Helper()
	b := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{selfSigned(t, cn)})
	b.SetSequenceNumber(seq)
	b.SetRefreshHint(time.Hour) // longer than FederationRefresh: the shorter one wins
	doc, err := b.Marshal()
	require.NoError(t, err)
	return doc, b
}

// Fed rule 25: every bad answer is a failed poll, logged, and the last good
// bundle stays; Fed rule 20: the next good fetch is stored, and a bundle
// replaced by hand is replaced again.
func TestFederationBadEndpointKeepsLastGoodBundle(t *testing.T) {
	f := newFakeEndpoint(t)
	good, goodBundle := partnerDoc(t, 5, "partner-1")
	f.set("good", good)
	var logs logtest.Buffer
	s := start(t, server.Config{
		Logger:            slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		FederationRefresh: 20 * time.Millisecond,
		FederationTimeout: 3 * time.Second, // the hanging endpoint waits it out; an oversized document under -race and load must not
		Federation: []server.Relationship{{
			TrustDomain: partnerTD, URL: f.URL + "/bundle.json", Profile: server.ProfileHTTPSWeb, WebPKIRoots: f.roots,
		}},
	})
	isGood := func() bool {
		b := storedBundle(t, s, partnerTD)
		return b != nil && b.Equal(goodBundle)
	}
	require.Eventually(t, isGood, 15*time.Second, 5*time.Millisecond, logs.String())

	oversized := append([]byte(`{"keys":[],"x":"`), make([]byte, spiffebundle.MaxBundleSize)...)
	for _, tc := range []struct {
		name, mode string
		doc        []byte
		logged     string
	}{
		{"malformed document", "good", []byte(`{"keys": "nope"`), "spiffebundle"},
		{"not a bundle", "good", []byte(`<html>hello</html>`), "spiffebundle"},
		{"oversized document", "good", oversized, "larger than"},
		{"error status", "status", nil, "503"},
		{"hanging endpoint", "hang", nil, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := len(logs.String())
			f.set(tc.mode, tc.doc)
			f.awaitPolls(t)
			assert.True(t, isGood(), "the last good bundle stays")
			tail := logs.String()[from:]
			assert.Contains(t, tail, "fetching a federated bundle failed; the last good bundle stays")
			assert.Contains(t, tail, tc.logged)
		})
	}

	// A bundle set by hand is replaced by the next fetch (Fed rule 20).
	other, _ := partnerDoc(t, 9, "by-hand")
	f.set("good", good)
	_, err := s.Admin.SetFederatedBundle(t.Context(), partnerTD, other)
	require.NoError(t, err)
	require.Eventually(t, isGood, 15*time.Second, 5*time.Millisecond)

	// A new bundle is stored even with a lower sequence number: the most
	// recent fetch is current; the step back is logged.
	newer, newerBundle := partnerDoc(t, 3, "partner-2")
	from := len(logs.String())
	f.set("good", newer)
	require.Eventually(t, func() bool {
		b := storedBundle(t, s, partnerTD)
		return b != nil && b.Equal(newerBundle)
	}, 15*time.Second, 5*time.Millisecond)
	assert.Contains(t, logs.String()[from:], "sequence number is lower")
}

// Fed rule 16: an https_spiffe endpoint whose X509-SVID carries another ID
// than the configured one is refused, and the stored bundle stays.
func TestFederationWrongEndpointID(t *testing.T) {
	org := start(t, server.Config{FederationBind: "127.0.0.1:0"})
	// The operator stored example.org's bundle by hand, with a sequence
	// number the endpoint does not serve: any accepted fetch would replace it.
	handSet := org.Bundle().Clone()
	handSet.SetSequenceNumber(999)
	doc, err := handSet.Marshal()
	require.NoError(t, err)

	var logs logtest.Buffer
	dir := t.TempDir()
	st := nodetest.StartServerIn(t, dir, server.Config{
		TrustDomain:       partnerTD,
		Logger:            slog.New(slog.NewTextHandler(&logs, nil)),
		FederationRefresh: 20 * time.Millisecond,
	})
	_, err = st.Admin.SetFederatedBundle(t.Context(), td, doc)
	require.NoError(t, err)
	orphan := spiffeid.RequireTrustDomainFromString("orphan.test")
	orphanDoc, err := spiffebundle.FromX509Authorities(orphan, []*x509.Certificate{selfSigned(t, "o")}).Marshal()
	require.NoError(t, err)
	_, err = st.Admin.SetFederatedBundle(t.Context(), orphan, orphanDoc)
	require.NoError(t, err)
	st.Stop()

	third := spiffeid.RequireTrustDomainFromString("third.test")
	p := nodetest.StartServerIn(t, dir, server.Config{
		TrustDomain:       partnerTD,
		Logger:            slog.New(slog.NewTextHandler(&logs, nil)),
		FederationRefresh: 20 * time.Millisecond,
		Federation: []server.Relationship{
			{
				// Self-serving with no bootstrap: the stored bundle is used.
				TrustDomain: td, URL: endpointURL(org), Profile: server.ProfileHTTPSSPIFFE,
				EndpointSPIFFEID: spiffeid.RequireFromPath(td, "/impostor-check"),
			},
			{
				// Not self-serving (Fed rule 18): third.test's bundle from an
				// endpoint of example.org, authenticated with the stored
				// example.org bundle.
				TrustDomain: third, URL: endpointURL(org), Profile: server.ProfileHTTPSSPIFFE,
				EndpointSPIFFEID: endpointID(td),
			},
		},
	})
	require.Eventually(t, func() bool { return storedBundle(t, p, third) != nil }, 15*time.Second, 5*time.Millisecond,
		"the non-self-serving relationship works")
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "fetching a federated bundle failed") &&
			strings.Contains(logs.String(), "trust_domain=example.org") &&
			strings.Contains(logs.String(), "is not authorized")
	}, 15*time.Second, 5*time.Millisecond)
	b := storedBundle(t, p, td)
	require.NotNil(t, b)
	assert.True(t, b.Equal(handSet), "the stored bundle stays")
	// A bundle without a relationship is kept, and named in the log.
	assert.NotNil(t, storedBundle(t, p, orphan))
	assert.Contains(t, logs.String(), "a federated bundle without a federation relationship is kept")
}

// Fed rules 12-13: an https_web bundle endpoint serves the certificate
// FederationCertificate returns, renewed without a restart.
func TestFederationWebEndpoint(t *testing.T) {
	var current atomic.Pointer[tls.Certificate]
	cert1, root1 := serverCert(t, "endpoint-1")
	current.Store(&cert1)
	s := start(t, server.Config{
		FederationBind: "127.0.0.1:0", FederationProfile: server.ProfileHTTPSWeb,
		FederationCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil },
	})
	fetchWith := func(root *x509.Certificate) (*spiffebundle.Bundle, error) {
		pool := x509.NewCertPool()
		pool.AddCert(root)
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		return federation.FetchBundle(ctx, td, endpointURL(s), federation.WithWebPKIRoots(pool))
	}
	b, err := fetchWith(root1)
	require.NoError(t, err)
	assert.True(t, b.X509Bundle().Equal(s.Bundle().X509Bundle()))

	// Only "/" is the bundle endpoint.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: webTLS(root1)}}
	resp, err := client.Get(endpointURL(s) + "other")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	client.CloseIdleConnections()

	// A renewed certificate is presented at the next handshake.
	cert2, root2 := serverCert(t, "endpoint-2")
	current.Store(&cert2)
	_, err = fetchWith(root2)
	require.NoError(t, err)
	_, err = fetchWith(root1)
	require.ErrorContains(t, err, "certificate signed by unknown authority")
}

// serverCert returns a self-signed certificate for 127.0.0.1 with its key,
// and the certificate alone.
func serverCert(t *testing.T, cn string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	root := writeServerCert(t, certFile, keyFile, cn)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	return cert, root
}

// writeServerCert writes a self-signed certificate for 127.0.0.1 and its
// key, and returns the certificate.
func writeServerCert(t *testing.T, certFile, keyFile, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	keyPEM, err := pemutil.EncodePKCS8PrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	require.NoError(t, os.WriteFile(certFile, pemutil.EncodeCertificates([]*x509.Certificate{cert}), 0o600))
	return cert
}

// TestFederationConfigErrors: every relationship parameter is checked
// before the server starts (Fed rules 1, 2, 8, 14, 17, 23).
func TestFederationConfigErrors(t *testing.T) {
	partnerID := spiffeid.RequireFromPath(partnerTD, "/spiffekit/server")
	boot := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{selfSigned(t, "r")})
	roots := x509.NewCertPool()
	cert, _ := serverCert(t, "x")
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
	ok := server.Relationship{TrustDomain: partnerTD, URL: "https://partner.test/", Profile: server.ProfileHTTPSSPIFFE,
		EndpointSPIFFEID: partnerID, BootstrapBundle: boot}
	with := func(f func(r *server.Relationship)) []server.Relationship {
		r := ok
		f(&r)
		return []server.Relationship{r}
	}
	for _, tc := range []struct {
		name string
		cfg  server.Config
		msg  string
	}{
		{"own trust domain", server.Config{Federation: with(func(r *server.Relationship) {
			r.TrustDomain = td
			r.EndpointSPIFFEID = endpointID(td)
		})}, "a trust domain's own bundle can never be overwritten through federation"},
		{"no trust domain", server.Config{Federation: with(func(r *server.Relationship) { r.TrustDomain = spiffeid.TrustDomain{} })}, "relationship #1: the trust domain is required"},
		{"no URL", server.Config{Federation: with(func(r *server.Relationship) { r.URL = "" })}, "URL is required"},
		{"http URL", server.Config{Federation: with(func(r *server.Relationship) { r.URL = "http://partner.test/" })}, "must be https"},
		{"userinfo", server.Config{Federation: with(func(r *server.Relationship) { r.URL = "https://u:p@partner.test/" })}, "user information"},
		{"no host", server.Config{Federation: with(func(r *server.Relationship) { r.URL = "https:///x" })}, "no host"},
		{"unparsable URL", server.Config{Federation: with(func(r *server.Relationship) { r.URL = "https://[::1" })}, "bad URL"},
		{"no profile", server.Config{Federation: with(func(r *server.Relationship) { r.Profile = "" })}, "profile is required"},
		{"unknown profile", server.Config{Federation: with(func(r *server.Relationship) { r.Profile = "https" })}, "unknown profile"},
		{"no endpoint ID", server.Config{Federation: with(func(r *server.Relationship) { r.EndpointSPIFFEID = spiffeid.ID{} })}, "endpoint's SPIFFE ID"},
		{"roots with spiffe", server.Config{Federation: with(func(r *server.Relationship) { r.WebPKIRoots = roots })}, "https_web profile only"},
		{"bootstrap of another domain", server.Config{Federation: with(func(r *server.Relationship) { r.EndpointSPIFFEID = endpointID(td) })}, "bootstrap bundle is only for"},
		{"no bootstrap", server.Config{Federation: with(func(r *server.Relationship) { r.BootstrapBundle = nil })}, "needs a bootstrap bundle"},
		{"bootstrap of the wrong trust domain", server.Config{Federation: with(func(r *server.Relationship) {
			r.BootstrapBundle = spiffebundle.FromX509Authorities(td, boot.X509Authorities())
		})}, `the bootstrap bundle is of trust domain "example.org"`},
		{"bootstrap without X.509", server.Config{Federation: with(func(r *server.Relationship) { r.BootstrapBundle = spiffebundle.New(partnerTD) })}, "no X.509 authority"},
		{"web with endpoint ID", server.Config{Federation: with(func(r *server.Relationship) { r.Profile = server.ProfileHTTPSWeb })}, "https_spiffe profile only"},
		{"twice", server.Config{Federation: []server.Relationship{ok, ok}}, "configured twice"},
		{"too many", server.Config{Federation: make([]server.Relationship, 1025)}, "at most"},
		{"profile without bind", server.Config{FederationProfile: server.ProfileHTTPSWeb}, "no FederationBind"},
		{"certificate without bind", server.Config{FederationCertificate: getCert}, "no FederationBind"},
		{"unknown endpoint profile", server.Config{FederationBind: "127.0.0.1:0", FederationProfile: "web"}, "unknown bundle endpoint profile"},
		{"web endpoint without certificate", server.Config{FederationBind: "127.0.0.1:0", FederationProfile: server.ProfileHTTPSWeb}, "needs FederationCertificate"},
		{"spiffe endpoint with certificate", server.Config{FederationBind: "127.0.0.1:0", FederationCertificate: getCert}, "FederationCertificate is for https_web"},
		{"negative refresh", server.Config{FederationRefresh: -1}, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := memConfig()
			cfg.Federation = tc.cfg.Federation
			cfg.FederationBind, cfg.FederationProfile, cfg.FederationCertificate = tc.cfg.FederationBind, tc.cfg.FederationProfile, tc.cfg.FederationCertificate
			cfg.FederationRefresh = tc.cfg.FederationRefresh
			_, err := server.New(t.Context(), cfg)
			require.ErrorIs(t, err, server.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}

	// A malformed bundle endpoint address is the configuration's fault;
	// one that cannot be listened on is not: neither an unknown host nor a
	// busy port.
	cfg := memConfig()
	cfg.FederationBind = "127.0.0.1:99999"
	_, err := server.New(t.Context(), cfg)
	require.ErrorIs(t, err, server.ErrInvalidConfig)
	assert.EqualError(t, err, `server: invalid configuration: the bundle endpoint address "127.0.0.1:99999": the port must be a number from 0 to 65535`)
	cfg.FederationBind = "192.0.2.1:0"
	_, err = server.New(t.Context(), cfg)
	require.ErrorContains(t, err, "server: bundle endpoint: listen tcp")
	assert.NotErrorIs(t, err, server.ErrInvalidConfig)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	cfg.FederationBind = busy.Addr().String()
	_, err = server.New(t.Context(), cfg)
	require.ErrorIs(t, err, syscall.EADDRINUSE)
	assert.NotErrorIs(t, err, server.ErrInvalidConfig)
	assert.ErrorContains(t, err, "server: bundle endpoint: listen tcp "+busy.Addr().String())

	// Nor is a store that cannot say whether it holds a bootstrap bundle.
	cfg = memConfig()
	cfg.Stores.Bundles = failingBundles{}
	cfg.Federation = with(func(r *server.Relationship) { r.BootstrapBundle = nil })
	_, err = server.New(t.Context(), cfg)
	require.ErrorIs(t, err, errStoreDown)
	assert.NotErrorIs(t, err, server.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "server: federation relationship partner.test: reading the stored bundle")
}

// failingBundles is a bundle store that fails every read, and has no
// bundle to list.
type failingBundles struct{ registry.BundleStore }

func (failingBundles) GetBundle(context.Context, spiffeid.TrustDomain) (registry.FederatedBundle, error) {
	return registry.FederatedBundle{}, errStoreDown
}

func (failingBundles) ListBundles(context.Context) ([]registry.FederatedBundle, error) {
	return nil, nil
}

// TestFederationConfigAccepted: a bootstrap bundle, a stored bundle in
// place of a bootstrap, and an https_web relationship with system roots.
func TestFederationConfigAccepted(t *testing.T) {
	partnerID := spiffeid.RequireFromPath(partnerTD, "/spiffekit/server")
	boot := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{selfSigned(t, "r")})
	s := start(t, server.Config{FederationRefresh: time.Hour, Federation: []server.Relationship{
		{TrustDomain: partnerTD, URL: "https://127.0.0.1:1/", Profile: server.ProfileHTTPSSPIFFE, EndpointSPIFFEID: partnerID, BootstrapBundle: boot},
		{TrustDomain: spiffeid.RequireTrustDomainFromString("web.test"), URL: "https://127.0.0.1:1/b", Profile: server.ProfileHTTPSWeb},
	}})
	assert.Nil(t, s.FederationAddr(), "no bundle endpoint without FederationBind")

	dataDir := t.TempDir()
	s2 := nodetest.StartServerIn(t, dataDir, server.Config{})
	doc, err := spiffebundle.FromX509Authorities(partnerTD, []*x509.Certificate{selfSigned(t, "p")}).Marshal()
	require.NoError(t, err)
	_, err = s2.Stores.Bundles.PutBundle(t.Context(), registry.FederatedBundle{TrustDomain: partnerTD, Document: doc})
	require.NoError(t, err)
	s2.Stop()
	nodetest.StartServerIn(t, dataDir, server.Config{Federation: []server.Relationship{
		{TrustDomain: partnerTD, URL: "https://127.0.0.1:1/", Profile: server.ProfileHTTPSSPIFFE, EndpointSPIFFEID: partnerID},
	}})
}

func webTLS(root *x509.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
