package federation_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

var (
	// td is the foreign trust domain whose bundle the tests fetch.
	td = spiffeid.RequireTrustDomainFromString("partner.test")
	// endpointID is the SPIFFE ID of partner.test's bundle endpoint: the
	// endpoint is self-serving (Fed rule 17).
	endpointID = spiffeid.RequireFromPath(td, "/bundle-server")
)

// bundleOf returns a bundle of td holding the roots of cas, with a refresh
// hint of ten seconds.
func bundleOf(cas ...*testca.CA) *spiffebundle.Bundle {
	roots := make([]*x509.Certificate, 0, len(cas))
	for _, ca := range cas {
		roots = append(roots, ca.Root())
	}
	b := spiffebundle.FromX509Authorities(td, roots)
	b.SetRefreshHint(10 * time.Second)
	return b
}

// server is a bundle endpoint on loopback.
type server struct {
	URL string
}

// serveTLS serves h over HTTPS with conf on a loopback port until the test
// ends. (httptest.Server would add its own certificate beside conf's
// GetCertificate, and serve it to clients that send no SNI.)
func serveTLS(t *testing.T, conf *tls.Config, h http.Handler) *server {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: h, TLSConfig: conf, ErrorLog: log.New(io.Discard, "", 0)}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.ServeTLS(lis, "", "") })
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return &server{URL: "https://" + lis.Addr().String()}
}

// startSPIFFEServer serves h over HTTPS on loopback, presenting the current
// X509-SVID of svid (https_spiffe, Fed rule 15).
func startSPIFFEServer(t *testing.T, svid x509svid.Source, h http.Handler) *server {
	t.Helper()
	return serveTLS(t, tlsconfig.TLSServerConfig(svid), h)
}

// webLeaf mints a Web PKI server certificate under ca naming the given IP
// addresses and DNS names, and no SPIFFE ID.
func webLeaf(t *testing.T, ca *testca.CA, ips []net.IP, dnsNames ...string) *x509svid.SVID {
	t.Helper()
	chain, key := ca.NewLeaf(t, spiffeid.ID{}, testca.WithTemplate(func(c *x509.Certificate) {
		c.IPAddresses = ips
		c.DNSNames = dnsNames
	}))
	return &x509svid.SVID{Certificates: chain, PrivateKey: key}
}

// startWebServer serves h over HTTPS on loopback with a certificate from ca
// naming 127.0.0.1 (https_web, Fed rule 12), or the given DNS names instead.
func startWebServer(t *testing.T, ca *testca.CA, h http.Handler, dnsNames ...string) *server {
	t.Helper()
	var ips []net.IP
	if len(dnsNames) == 0 {
		ips = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	cert := testca.TLSCertificate(webLeaf(t, ca, ips, dnsNames...))
	return serveTLS(t, &tls.Config{Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12}, h)
}

// newHandler returns our bundle endpoint handler serving source's bundle of td.
func newHandler(t testing.TB, source spiffebundle.Source) http.Handler {
	t.Helper()
	h, err := federation.NewHandler(td, source)
	require.NoError(t, err)
	return h
}

// bundleServer is a bundle source whose bundle, or failure, a test can
// change at any time; it also counts the requests it served.
type bundleServer struct {
	mu       sync.Mutex
	bundle   *spiffebundle.Bundle
	err      error
	requests int
}

func (s *bundleServer) set(b *spiffebundle.Bundle, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundle, s.err = b, err
}

func (s *bundleServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *bundleServer) GetBundleForTrustDomain(spiffeid.TrustDomain) (*spiffebundle.Bundle, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	return s.bundle, s.err
}

// rawHandler answers every request with status and body.
func rawHandler(status int, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}
