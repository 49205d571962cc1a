package federation_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

func TestFetchBundleProfiles(t *testing.T) {
	partner := testca.New(t, td)
	other := testca.New(t, td)
	served := bundleOf(partner)
	h := newHandler(t, served)

	spiffeSrv := startSPIFFEServer(t, partner.NewSVID(t, endpointID.Path()), h)
	wrongIDSrv := startSPIFFEServer(t, partner.NewSVID(t, "/impostor"), h)
	otherCASrv := startSPIFFEServer(t, other.NewSVID(t, endpointID.Path()), h)
	webSrv := startWebServer(t, partner, h)
	wrongHostSrv := startWebServer(t, partner, h, "bundle.partner.test")

	// localhost: the https_spiffe profile does not look at the host name
	// (Fed rule 16), so the same server is reachable under another name.
	localhostURL := strings.Replace(spiffeSrv.URL, "127.0.0.1", "localhost", 1)

	tests := []struct {
		name    string
		url     string
		opts    []federation.FetchOption
		wantErr string
	}{
		{"https_spiffe", spiffeSrv.URL, []federation.FetchOption{federation.WithSPIFFEAuth(served, endpointID)}, ""},
		{"https_spiffe ignores the host name (Fed rule 16)", localhostURL, []federation.FetchOption{federation.WithSPIFFEAuth(served, endpointID)}, ""},
		{"https_web", webSrv.URL, []federation.FetchOption{federation.WithWebPKIRoots(partner.RootPool())}, ""},

		// Fed rule 16: the presented ID must be the configured endpoint ID.
		{"https_spiffe wrong SPIFFE ID (Fed rule 16)", wrongIDSrv.URL, []federation.FetchOption{federation.WithSPIFFEAuth(served, endpointID)}, `unexpected ID "spiffe://partner.test/impostor"`},
		// Fed rule 16: the chain must verify against the configured bundle.
		{"https_spiffe CA not in bundle (Fed rule 16)", otherCASrv.URL, []federation.FetchOption{federation.WithSPIFFEAuth(served, endpointID)}, "could not GET bundle"},
		{"https_spiffe no bundle for the endpoint's trust domain (Fed rule 14)", spiffeSrv.URL, []federation.FetchOption{federation.WithSPIFFEAuth(x509bundle.NewSet(), endpointID)}, "could not GET bundle"},
		// Fed rule 13: the certificate must name the URL's host.
		{"https_web wrong IP address (Fed rule 13)", wrongHostSrv.URL, []federation.FetchOption{federation.WithWebPKIRoots(partner.RootPool())}, "doesn't contain any IP SANs"},
		{"https_web wrong host name (Fed rule 13)", strings.Replace(wrongHostSrv.URL, "127.0.0.1", "localhost", 1), []federation.FetchOption{federation.WithWebPKIRoots(partner.RootPool())}, "certificate is valid for bundle.partner.test, not localhost"},
		// Fed rule 13: the certificate must chain to the configured roots.
		{"https_web untrusted root (Fed rule 13)", webSrv.URL, []federation.FetchOption{federation.WithWebPKIRoots(other.RootPool())}, "certificate signed by unknown authority"},
		// Fed rule 13: the default is the system roots, which do not hold
		// the test CA.
		{"https_web system roots by default (Fed rule 13)", webSrv.URL, nil, "could not GET bundle"},
		// Fed rule 2: no fallback from one profile to the other: an SVID
		// names no host, so it fails https_web even from a trusted root.
		{"https_web against an SVID (Fed rule 2)", spiffeSrv.URL, []federation.FetchOption{federation.WithWebPKIRoots(partner.RootPool())}, "could not GET bundle"},
		// An https_web server presents no SPIFFE ID at all.
		{"https_spiffe against a web certificate (Fed rule 15)", webSrv.URL, []federation.FetchOption{federation.WithSPIFFEAuth(served, endpointID)}, "could not GET bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := federation.FetchBundle(t.Context(), td, tt.url, tt.opts...)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.True(t, strings.HasPrefix(err.Error(), "federation: "), err.Error())
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.True(t, served.Equal(got), "fetched bundle differs from the served one")
			assert.Equal(t, td, got.TrustDomain())
		})
	}
}

func TestFetchBundleConfiguration(t *testing.T) {
	partner := testca.New(t, td)
	source := bundleOf(partner)
	ok := "https://127.0.0.1:1/bundle"
	tests := []struct {
		name    string
		td      spiffeid.TrustDomain
		url     string
		opts    []federation.FetchOption
		wantErr string
	}{
		{"both profiles (Fed rule 2)", td, ok, []federation.FetchOption{federation.WithSPIFFEAuth(source, endpointID), federation.WithWebPKIRoots(nil)}, "federation: cannot use both SPIFFE and Web PKI authentication"},
		{"both profiles, other order (Fed rule 2)", td, ok, []federation.FetchOption{federation.WithWebPKIRoots(nil), federation.WithSPIFFEAuth(source, endpointID)}, "federation: cannot use both SPIFFE and Web PKI authentication"},
		{"SPIFFE auth twice", td, ok, []federation.FetchOption{federation.WithSPIFFEAuth(source, endpointID), federation.WithSPIFFEAuth(source, endpointID)}, "federation: cannot use both"},
		{"no bundle source (Fed rule 14)", td, ok, []federation.FetchOption{federation.WithSPIFFEAuth(nil, endpointID)}, "federation: bundle source is required"},
		{"no endpoint ID (Fed rule 14)", td, ok, []federation.FetchOption{federation.WithSPIFFEAuth(source, spiffeid.ID{})}, "federation: endpoint SPIFFE ID is required"},
		{"nil option", td, ok, []federation.FetchOption{nil}, "federation: fetch option is nil"},
		{"no trust domain (Fed rule 1)", spiffeid.TrustDomain{}, ok, nil, "federation: trust domain is required"},
		{"http URL (Fed rule 8)", td, "http://127.0.0.1:1/bundle", nil, `federation: bundle endpoint URL scheme must be https, not "http"`},
		{"relative URL (Fed rule 8)", td, "/bundle", nil, `scheme must be https, not ""`},
		{"userinfo (Fed rule 8)", td, "https://user:secret@127.0.0.1:1/bundle", nil, "federation: bundle endpoint URL must not contain userinfo"},
		{"no host (Fed rule 8)", td, "https:///bundle", nil, "federation: bundle endpoint URL has no host"},
		{"unparsable URL", td, "https://127.0.0.1:1/%zz", nil, "federation: invalid bundle endpoint URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := federation.FetchBundle(t.Context(), tt.td, tt.url, tt.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotContains(t, err.Error(), "secret")
		})
	}
}

func TestFetchBundleResponses(t *testing.T) {
	partner := testca.New(t, td)
	svid := partner.NewSVID(t, endpointID.Path())
	trust := bundleOf(partner)
	auth := federation.WithSPIFFEAuth(trust, endpointID)

	// A valid document padded with white space to exactly the size limit.
	empty := []byte(`{"keys":[]}`)
	atLimit := append(bytes.Repeat([]byte(" "), spiffebundle.MaxBundleSize-len(empty)), empty...)

	tests := []struct {
		name    string
		h       http.Handler
		wantErr string
	}{
		{"not found (Fed rule 25)", rawHandler(http.StatusNotFound, []byte(`{"keys":[]}`)), `bundle endpoint answered "404 Not Found"`},
		{"server error (Fed rule 25)", rawHandler(http.StatusInternalServerError, nil), `"500 Internal Server Error"`},
		{"no content (Fed rule 25)", rawHandler(http.StatusNoContent, nil), `"204 No Content"`},
		{"malformed JSON (Fed rule 25)", rawHandler(http.StatusOK, []byte(`{"keys":[`)), "federation: spiffebundle:"},
		{"not a bundle (Bundle rules)", rawHandler(http.StatusOK, []byte(`{"spiffe_refresh_hint":0,"keys":[]}`)), "federation: spiffebundle:"},
		{"empty body", rawHandler(http.StatusOK, nil), "federation: spiffebundle:"},
		{"oversized document (Fed rule 25)", rawHandler(http.StatusOK, bytes.Repeat([]byte(" "), spiffebundle.MaxBundleSize+1)), "federation: bundle document is larger than 1048576 bytes"},
		{"document at the size limit", rawHandler(http.StatusOK, atLimit), ""},
		{"empty keys is a valid bundle (Fed rule 25)", rawHandler(http.StatusOK, empty), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSPIFFEServer(t, svid, tt.h)
			got, err := federation.FetchBundle(t.Context(), td, srv.URL, auth)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, got.Empty())
			assert.Equal(t, td, got.TrustDomain())
		})
	}
}

// TestFetchBundleHangingEndpoint: an endpoint that never answers cannot hold
// a fetch beyond the caller's deadline (Fed rule 25).
func TestFetchBundleHangingEndpoint(t *testing.T) {
	partner := testca.New(t, td)
	trust := bundleOf(partner)

	release := make(chan struct{})
	srv := startSPIFFEServer(t, partner.NewSVID(t, endpointID.Path()), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	// A listener that accepts connections and never says a word: the TLS
	// handshake never completes.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		lis.Close()
		wg.Wait()
		for _, c := range conns {
			c.Close()
		}
	})

	for name, u := range map[string]string{
		"no response":  srv.URL,
		"no handshake": "https://" + lis.Addr().String() + "/bundle",
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			_, err := federation.FetchBundle(ctx, td, u, federation.WithSPIFFEAuth(trust, endpointID))
			require.Error(t, err)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			assert.True(t, strings.HasPrefix(err.Error(), "federation: "))
		})
	}

	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := federation.FetchBundle(ctx, td, srv.URL, federation.WithSPIFFEAuth(trust, endpointID))
		require.ErrorIs(t, err, context.Canceled)
	})
}

// redirectTo answers every request with a temporary redirect to target.
func redirectTo(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target, http.StatusTemporaryRedirect)
	})
}

func TestFetchBundleRedirects(t *testing.T) {
	partner := testca.New(t, td)
	other := testca.New(t, td)
	trust := bundleOf(partner)
	h := newHandler(t, trust)
	svid := partner.NewSVID(t, endpointID.Path())
	spiffeAuth := federation.WithSPIFFEAuth(trust, endpointID)
	webAuth := federation.WithWebPKIRoots(partner.RootPool())

	target := startSPIFFEServer(t, svid, h)
	otherIDTarget := startSPIFFEServer(t, partner.NewSVID(t, "/cdn"), h)
	otherCATarget := startSPIFFEServer(t, other.NewSVID(t, endpointID.Path()), h)
	webTarget := startWebServer(t, partner, h)
	webOtherCATarget := startWebServer(t, other, h)

	chain := func(n int, last string) string {
		u := last
		for range n {
			u = startSPIFFEServer(t, svid, redirectTo(u)).URL
		}
		return u
	}

	tests := []struct {
		name    string
		url     string
		auth    federation.FetchOption
		wantErr string
	}{
		// Fed rule 11: a redirect to a valid endpoint is followed, with the
		// same authentication (Fed rule 15: same SPIFFE ID).
		{"followed, https_spiffe (Fed rule 11)", chain(1, target.URL+"/moved"), spiffeAuth, ""},
		{"followed, https_web (Fed rule 11)", startWebServer(t, partner, redirectTo(webTarget.URL)).URL, webAuth, ""},
		{"three redirects", chain(3, target.URL), spiffeAuth, ""},
		{"four redirects", chain(4, target.URL), spiffeAuth, "stopped after 3 redirects"},
		{"redirect loop", "", spiffeAuth, "stopped after 3 redirects"},
		// Fed rules 8 and 11: the target must be an https URL.
		{"to http (Fed rule 11)", chain(1, "http://127.0.0.1:1/bundle"), spiffeAuth, `refusing redirect: bundle endpoint URL scheme must be https, not "http"`},
		{"to userinfo (Fed rule 8)", chain(1, "https://user:pw@127.0.0.1:1/bundle"), spiffeAuth, "refusing redirect: bundle endpoint URL must not contain userinfo"},
		// Fed rule 15: the target must present the same SPIFFE ID.
		{"to another SPIFFE ID (Fed rule 15)", chain(1, otherIDTarget.URL), spiffeAuth, `unexpected ID "spiffe://partner.test/cdn"`},
		// Fed rule 11: the same bundle authenticates the target.
		{"to an untrusted CA (Fed rule 11)", chain(1, otherCATarget.URL), spiffeAuth, "could not GET bundle"},
		// Fed rule 11: the same roots authenticate the target.
		{"https_web to an untrusted CA (Fed rule 11)", startWebServer(t, partner, redirectTo(webOtherCATarget.URL)).URL, webAuth, "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				var self string
				srv := startSPIFFEServer(t, svid, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Redirect(w, r, self, http.StatusFound)
				}))
				self = srv.URL + "/again"
				u = srv.URL
			}
			got, err := federation.FetchBundle(t.Context(), td, u, tt.auth)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.True(t, trust.Equal(got))
		})
	}
}

// TestFetchBundleRedirectNotStored: every fetch starts again from the
// configured URL (Fed rule 11).
func TestFetchBundleRedirectNotStored(t *testing.T) {
	partner := testca.New(t, td)
	trust := bundleOf(partner)
	svid := partner.NewSVID(t, endpointID.Path())
	target := startSPIFFEServer(t, svid, newHandler(t, trust))
	var mu sync.Mutex
	hits := 0
	origin := startSPIFFEServer(t, svid, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		http.Redirect(w, r, target.URL, http.StatusMovedPermanently)
	}))
	for range 3 {
		_, err := federation.FetchBundle(t.Context(), td, origin.URL, federation.WithSPIFFEAuth(trust, endpointID))
		require.NoError(t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 3, hits)
}

// TestFetchBundleNoClientCertificate: the client presents no certificate
// even to a server that asks for one (Fed rule 9 leaves no use for it).
func TestFetchBundleNoClientCertificate(t *testing.T) {
	partner := testca.New(t, td)
	trust := bundleOf(partner)
	h := newHandler(t, trust)
	conf := tlsconfig.TLSServerConfig(partner.NewSVID(t, endpointID.Path()))
	conf.ClientAuth = tls.RequestClientCert
	srv := serveTLS(t, conf, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) != 0 {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		h.ServeHTTP(w, r)
	}))
	_, err := federation.FetchBundle(t.Context(), td, srv.URL, federation.WithSPIFFEAuth(trust, endpointID))
	require.NoError(t, err)
}
