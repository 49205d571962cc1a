// Package federation checks that spiffekit's federation package and
// go-spiffe v2.9.0's interoperate over real HTTPS on loopback: go-spiffe's
// FetchBundle and WatchBundle against our NewHandler, and ours against
// go-spiffe's NewHandler, with both endpoint profiles (https_spiffe and
// https_web).
package federation

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	gsspiffebundle "github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	gsfederation "github.com/spiffe/go-spiffe/v2/federation"
	gsid "github.com/spiffe/go-spiffe/v2/spiffeid"
	gstlsconfig "github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	gsx509svid "github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

const timeout = 15 * time.Second

var (
	td         = spiffeid.RequireTrustDomainFromString("partner.test")
	endpointID = spiffeid.RequireFromPath(td, "/bundle-server")
	gsTD       = gsid.RequireTrustDomainFromString(td.Name())
	gsEndpoint = gsid.RequireFromString(endpointID.String())
)

// partner is the foreign trust domain: its CA, its bundle in both libraries'
// types, the bundle endpoint's X509-SVID (https_spiffe) and a Web PKI
// certificate for 127.0.0.1 from the same CA (https_web).
type partner struct {
	bundle   *spiffebundle.Bundle
	gsBundle *gsspiffebundle.Bundle
	svid     *x509svid.SVID
	gsSVID   *gsx509svid.SVID
	webCert  tls.Certificate
	roots    *x509.CertPool
}

func newPartner(t *testing.T) *partner {
	t.Helper()
	ctx := t.Context()
	caKey := newKey(t)
	root, err := ca.CreateRoot(ctx, ca.RootParams{Signer: caKey, TrustDomain: td})
	require.NoError(t, err)
	authority, err := ca.NewX509Authority(ca.X509AuthorityConfig{Signer: caKey, Certificate: root})
	require.NoError(t, err)

	svidKey := newKey(t)
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: svidKey.Public(), ID: endpointID})
	require.NoError(t, err)

	// A Web PKI server certificate: signed by the same root with crypto/x509
	// directly, since ca mints only SVIDs.
	webKey := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	webDER, err := x509.CreateCertificate(rand.Reader, tmpl, root, webKey.Public(), caKey)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	roots.AddCert(root)

	bundle := spiffebundle.FromX509Authorities(td, []*x509.Certificate{root})
	bundle.SetRefreshHint(5 * time.Minute)
	bundle.SetSequenceNumber(3)
	doc, err := bundle.Marshal()
	require.NoError(t, err)
	gsBundle, err := gsspiffebundle.Parse(gsTD, doc)
	require.NoError(t, err)

	return &partner{
		bundle:   bundle,
		gsBundle: gsBundle,
		svid:     &x509svid.SVID{ID: endpointID, Certificates: chain, PrivateKey: svidKey},
		gsSVID:   &gsx509svid.SVID{ID: gsEndpoint, Certificates: chain, PrivateKey: svidKey},
		webCert:  tls.Certificate{Certificate: [][]byte{webDER}, PrivateKey: webKey},
		roots:    roots,
	}
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return key
}

// serial returns a random certificate serial number.
func serial(t *testing.T) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	require.NoError(t, err)
	return n
}

// serve serves h over HTTPS with conf on a loopback port until the test ends
// and returns the endpoint URL.
func serve(t *testing.T, conf *tls.Config, h http.Handler) string {
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
	return "https://" + lis.Addr().String() + "/bundle"
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	t.Cleanup(cancel)
	return ctx
}

// ourEndpoints serves the partner's bundle with our NewHandler under both
// profiles.
func ourEndpoints(t *testing.T, p *partner) (spiffeURL, webURL string) {
	t.Helper()
	h, err := federation.NewHandler(td, p.bundle)
	require.NoError(t, err)
	spiffeURL = serve(t, tlsconfig.TLSServerConfig(p.svid), h)
	webURL = serve(t, &tls.Config{Certificates: []tls.Certificate{p.webCert}, MinVersion: tls.VersionTLS12}, h)
	return spiffeURL, webURL
}

// theirEndpoints serves the partner's bundle with go-spiffe's NewHandler under
// both profiles.
func theirEndpoints(t *testing.T, p *partner) (spiffeURL, webURL string) {
	t.Helper()
	h, err := gsfederation.NewHandler(gsTD, p.gsBundle)
	require.NoError(t, err)
	spiffeURL = serve(t, gstlsconfig.TLSServerConfig(p.gsSVID), h)
	webURL = serve(t, &tls.Config{Certificates: []tls.Certificate{p.webCert}, MinVersion: tls.VersionTLS12}, h)
	return spiffeURL, webURL
}

func TestGoSPIFFEFetchesFromOurHandler(t *testing.T) {
	p := newPartner(t)
	spiffeURL, webURL := ourEndpoints(t, p)
	for name, tc := range map[string]struct {
		url string
		opt gsfederation.FetchOption
	}{
		"https_spiffe": {spiffeURL, gsfederation.WithSPIFFEAuth(p.gsBundle, gsEndpoint)},
		"https_web":    {webURL, gsfederation.WithWebPKIRoots(p.roots)},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := gsfederation.FetchBundle(testContext(t), gsTD, tc.url, tc.opt)
			require.NoError(t, err)
			assert.True(t, p.gsBundle.Equal(got), "go-spiffe read another bundle than we served")
		})
	}
	t.Run("https_spiffe wrong endpoint ID", func(t *testing.T) {
		other := gsid.RequireFromPath(gsTD, "/other")
		_, err := gsfederation.FetchBundle(testContext(t), gsTD, spiffeURL, gsfederation.WithSPIFFEAuth(p.gsBundle, other))
		require.Error(t, err)
	})
}

func TestOursFetchesFromGoSPIFFEHandler(t *testing.T) {
	p := newPartner(t)
	spiffeURL, webURL := theirEndpoints(t, p)
	for name, tc := range map[string]struct {
		url string
		opt federation.FetchOption
	}{
		"https_spiffe": {spiffeURL, federation.WithSPIFFEAuth(p.bundle, endpointID)},
		"https_web":    {webURL, federation.WithWebPKIRoots(p.roots)},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := federation.FetchBundle(testContext(t), td, tc.url, tc.opt)
			require.NoError(t, err)
			assert.True(t, p.bundle.Equal(got), "we read another bundle than go-spiffe served")
		})
	}
	t.Run("https_spiffe wrong endpoint ID", func(t *testing.T) {
		_, err := federation.FetchBundle(testContext(t), td, spiffeURL,
			federation.WithSPIFFEAuth(p.bundle, spiffeid.RequireFromPath(td, "/other")))
		require.ErrorContains(t, err, "federation: ")
	})
}

// firstUpdate is a watcher of either library (both interfaces have the same
// method set up to the bundle type) that reports the first update and cancels
// the watch.
type firstUpdate[B any] struct {
	cancel  context.CancelFunc
	updates chan B
	errs    chan error
}

func newFirstUpdate[B any](cancel context.CancelFunc) *firstUpdate[B] {
	return &firstUpdate[B]{cancel: cancel, updates: make(chan B, 1), errs: make(chan error, 16)}
}

func (w *firstUpdate[B]) NextRefresh(time.Duration) time.Duration { return time.Second }
func (w *firstUpdate[B]) OnUpdate(b B) {
	select {
	case w.updates <- b:
	default:
	}
	w.cancel()
}
func (w *firstUpdate[B]) OnError(err error) {
	select {
	case w.errs <- err:
	default:
	}
}

func TestGoSPIFFEWatchesOurHandler(t *testing.T) {
	p := newPartner(t)
	spiffeURL, webURL := ourEndpoints(t, p)
	for name, tc := range map[string]struct {
		url string
		opt gsfederation.FetchOption
	}{
		"https_spiffe": {spiffeURL, gsfederation.WithSPIFFEAuth(p.gsBundle, gsEndpoint)},
		"https_web":    {webURL, gsfederation.WithWebPKIRoots(p.roots)},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			w := newFirstUpdate[*gsspiffebundle.Bundle](cancel)
			err := gsfederation.WatchBundle(ctx, gsTD, tc.url, w, tc.opt)
			require.ErrorIs(t, err, context.Canceled)
			require.Empty(t, w.errs)
			require.Len(t, w.updates, 1)
			assert.True(t, p.gsBundle.Equal(<-w.updates))
		})
	}
}

func TestOursWatchesGoSPIFFEHandler(t *testing.T) {
	p := newPartner(t)
	spiffeURL, webURL := theirEndpoints(t, p)
	for name, tc := range map[string]struct {
		url string
		opt federation.FetchOption
	}{
		"https_spiffe": {spiffeURL, federation.WithSPIFFEAuth(p.bundle, endpointID)},
		"https_web":    {webURL, federation.WithWebPKIRoots(p.roots)},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(testContext(t))
			defer cancel()
			w := newFirstUpdate[*spiffebundle.Bundle](cancel)
			err := federation.WatchBundle(ctx, td, tc.url, w, tc.opt)
			require.ErrorIs(t, err, context.Canceled)
			require.Empty(t, w.errs)
			require.Len(t, w.updates, 1)
			assert.True(t, p.bundle.Equal(<-w.updates))
		})
	}
}

// TestSameDocument: both handlers serve byte-for-byte documents that each
// library parses into the same bundle, with the same Content-Type.
func TestSameDocument(t *testing.T) {
	p := newPartner(t)
	ours, _ := ourEndpoints(t, p)
	theirs, _ := theirEndpoints(t, p)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsconfig.TLSClientConfig(p.bundle, tlsconfig.AuthorizeID(endpointID))}}
	t.Cleanup(client.CloseIdleConnections)
	get := func(url string) (string, []byte) {
		req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, url, http.NoBody)
		require.NoError(t, err)
		res, err := client.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusOK, res.StatusCode)
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		return res.Header.Get("Content-Type"), body
	}
	ourType, ourDoc := get(ours)
	theirType, theirDoc := get(theirs)
	assert.Equal(t, theirType, ourType)
	a, err := gsspiffebundle.Parse(gsTD, ourDoc)
	require.NoError(t, err)
	b, err := spiffebundle.Parse(td, theirDoc)
	require.NoError(t, err)
	assert.True(t, p.gsBundle.Equal(a))
	assert.True(t, p.bundle.Equal(b))

	// Both answer 405 to other methods.
	for _, url := range []string{ours, theirs} {
		req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, url, http.NoBody)
		require.NoError(t, err)
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode, url)
	}
}
