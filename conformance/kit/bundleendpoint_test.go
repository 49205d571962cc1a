//go:build !windows

package kit_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestSpiffekitBundleEndpoint runs the kit against the bundle endpoint of
// spiffekit's issuing server (https_spiffe, its own X509-SVID): every MUST
// rule passes.
func TestSpiffekitBundleEndpoint(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{FederationBind: "127.0.0.1:0"})
	r, err := kit.CheckBundleEndpoint(t.Context(), kit.BundleEndpointConfig{
		URL:            "https://" + s.FederationAddr().String() + "/",
		TrustDomain:    s.TrustDomain().Name(),
		Profile:        kit.ProfileHTTPSSPIFFE,
		EndpointID:     spiffeid.RequireFromPath(s.TrustDomain(), "/spiffekit/server").String(),
		EndpointBundle: s.Bundle().X509Authorities(),
		Timeout:        20 * time.Second,
	})
	require.NoError(t, err)
	requireAllMustPass(t, r)
	for _, rule := range []string{"Fed rule 7", "Fed rule 9", "Fed rule 10a", "Fed rule 16", "Bundle rule 7", "X509 rule 21"} {
		assert.Equal(t, kit.Pass, r.Verdicts()[rule], rule)
	}
}

// webEndpoint serves h over HTTPS (httptest's certificate for 127.0.0.1)
// with tlsConf changed by mod, and returns its URL and roots.
func webEndpoint(t *testing.T, h http.Handler, mod func(*tls.Config)) (string, *x509.CertPool) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	if mod != nil {
		srv.Close()
		srv = httptest.NewUnstartedServer(h)
		srv.TLS = &tls.Config{}
		mod(srv.TLS)
		srv.StartTLS()
	}
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv.URL, roots
}

// federationBundle is a bundle of example.org served by federation's
// handler, to change while it is served.
func federationBundle(t *testing.T) (*spiffebundle.Bundle, http.Handler) {
	t.Helper()
	b := spiffebundle.FromX509Authorities(exampleTD, []*x509.Certificate{testca.New(t, exampleTD).Cert()})
	b.SetSequenceNumber(1)
	b.SetRefreshHint(time.Minute)
	require.NoError(t, b.AddJWTAuthority("k1", testca.NewECKey(t).Public()))
	h, err := federation.NewHandler(exampleTD, b)
	require.NoError(t, err)
	return b, h
}

func checkWeb(t *testing.T, url string, roots *x509.CertPool, wait time.Duration) *kit.Report {
	t.Helper()
	r, err := kit.CheckBundleEndpoint(t.Context(), kit.BundleEndpointConfig{
		URL: url, TrustDomain: "example.org", Profile: kit.ProfileHTTPSWeb, WebRoots: roots,
		Timeout: 20 * time.Second, RotationWait: wait, PollInterval: 20 * time.Millisecond,
	})
	require.NoError(t, err)
	return r
}

// TestBundleEndpointRotation serves spiffekit's federation handler over
// https_web while its bundle rotates: with the sequence raised, Bundle
// rule 8b passes; with the sequence kept (an unsequenced bundle), it
// fails, and nothing else does.
func TestBundleEndpointRotation(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	for _, sequenced := range []bool{true, false} {
		b, h := federationBundle(t)
		// The bundle rotates once the first answer has been served.
		next := testca.New(t, exampleTD).Cert()
		var once sync.Once
		rotating := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.ServeHTTP(w, req)
			once.Do(func() {
				b.SetX509Authorities([]*x509.Certificate{next})
				if sequenced {
					b.SetSequenceNumber(2)
				}
			})
		})
		url, roots := webEndpoint(t, rotating, nil)
		r := checkWeb(t, url, roots, time.Minute)
		if sequenced {
			requireAllMustPass(t, r)
			assert.Equal(t, kit.Pass, r.Verdicts()["Bundle rule 8b"], "%s", text(t, r))
		} else {
			assert.Equal(t, []string{"Bundle rule 8b"}, r.FailedRules(), "%s", text(t, r))
		}
	}
}

// TestBundleEndpointMutations serves a bundle endpoint broken one rule at
// a time: the kit fails exactly that rule.
func TestBundleEndpointMutations(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	_, good := federationBundle(t)
	text := func(ct string, status int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/bundle", good)
	mux.Handle("/moved", http.RedirectHandler("/bundle", http.StatusMovedPermanently))
	mux.Handle("/temporary", http.RedirectHandler("/bundle", http.StatusFound))
	mux.Handle("/to-http", http.RedirectHandler("http://127.0.0.1:1/bundle", http.StatusFound))
	mux.Handle("/loop", http.RedirectHandler("/loop", http.StatusFound))
	mux.Handle("/text", http.StripPrefix("/text", text("text/plain", http.StatusOK, `{"keys":[]}`)))
	mux.Handle("/error", text("application/json", http.StatusInternalServerError, `{"keys":[]}`))
	url, roots := webEndpoint(t, mux, nil)

	for _, row := range []struct {
		name       string
		path       string
		failed     []string
		deviations []string
	}{
		{name: "well-formed", path: "/bundle"},
		{name: "temporary redirect", path: "/temporary"},
		{name: "permanent redirect", path: "/moved", deviations: []string{"Fed rule 11b"}},
		{name: "redirect to http", path: "/to-http", failed: []string{"Fed rule 11a"}},
		{name: "redirect loop", path: "/loop", failed: []string{"Fed rule 11a"}},
		{name: "Content-Type text/plain", path: "/text", deviations: []string{"Bundle rule 8a", "Bundle rule 9", "Fed rule 10b"}},
		{name: "status 500", path: "/error", failed: []string{"Fed rule 10a"}},
	} {
		t.Run(row.name, func(t *testing.T) {
			r := checkWeb(t, url+row.path, roots, 0)
			assert.Equal(t, row.failed, r.FailedRules(), "%s", reportText(t, r))
			assert.Equal(t, row.deviations, deviations(r), "%s", reportText(t, r))
		})
	}

	t.Run("untrusted certificate", func(t *testing.T) {
		r := checkWeb(t, url+"/bundle", x509.NewCertPool(), 0)
		assert.Equal(t, []string{"Fed rule 12"}, r.FailedRules(), "%s", reportText(t, r))
	})
	t.Run("http URL", func(t *testing.T) {
		r := checkWeb(t, strings.Replace(url, "https:", "http:", 1)+"/bundle", roots, 0)
		assert.Equal(t, []string{"Fed rule 8"}, r.FailedRules(), "%s", reportText(t, r))
	})
	t.Run("client certificate required", func(t *testing.T) {
		u, roots := webEndpoint(t, good, func(c *tls.Config) { c.ClientAuth = tls.RequireAnyClientCert })
		r := checkWeb(t, u, roots, 0)
		assert.Equal(t, []string{"Fed rule 9"}, r.FailedRules(), "%s", reportText(t, r))
	})
	t.Run("TLS 1.0 accepted", func(t *testing.T) {
		u, roots := webEndpoint(t, good, func(c *tls.Config) { c.MinVersion = tls.VersionTLS10 })
		r := checkWeb(t, u, roots, 0)
		assert.Equal(t, []string{"Fed rule 7"}, r.FailedRules(), "%s", reportText(t, r))
	})
	t.Run("https_spiffe with another ID", func(t *testing.T) {
		ca := testca.New(t, exampleTD)
		svid := ca.NewSVID(t, "/not-the-endpoint")
		srv := httptest.NewUnstartedServer(good)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{*testca.TLSCertificate(svid)}}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		r, err := kit.CheckBundleEndpoint(t.Context(), kit.BundleEndpointConfig{
			URL: srv.URL, TrustDomain: "example.org", Profile: kit.ProfileHTTPSSPIFFE,
			EndpointID: "spiffe://example.org/bundle-endpoint", EndpointBundle: []*x509.Certificate{ca.Cert()},
		})
		require.NoError(t, err)
		assert.Equal(t, []string{"Fed rule 16"}, r.FailedRules(), "%s", reportText(t, r))
	})
}

// TestBundleEndpointRefusals: missing relationship parameters and an
// endpoint that cannot be reached are refused.
func TestBundleEndpointRefusals(t *testing.T) {
	for name, cfg := range map[string]kit.BundleEndpointConfig{
		"bad URL":             {URL: "%zz", TrustDomain: "example.org", Profile: kit.ProfileHTTPSWeb},
		"no trust domain":     {URL: "https://127.0.0.1:1/", Profile: kit.ProfileHTTPSWeb},
		"bad trust domain":    {URL: "https://127.0.0.1:1/", TrustDomain: "Example", Profile: kit.ProfileHTTPSWeb},
		"no profile":          {URL: "https://127.0.0.1:1/", TrustDomain: "example.org"},
		"spiffe without ID":   {URL: "https://127.0.0.1:1/", TrustDomain: "example.org", Profile: kit.ProfileHTTPSSPIFFE},
		"spiffe without keys": {URL: "https://127.0.0.1:1/", TrustDomain: "example.org", Profile: kit.ProfileHTTPSSPIFFE, EndpointID: "spiffe://example.org/x"},
		"nothing listening":   {URL: "https://127.0.0.1:1/", TrustDomain: "example.org", Profile: kit.ProfileHTTPSWeb, Timeout: time.Second},
	} {
		_, err := kit.CheckBundleEndpoint(t.Context(), cfg)
		assert.Error(t, err, name)
	}
}

func reportText(t *testing.T, r *kit.Report) string { return text(t, r) }
