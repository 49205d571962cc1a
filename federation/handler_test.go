package federation_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/logger"
	"github.com/spiffekit/spiffekit/spiffeid"
)

func TestHandler(t *testing.T) {
	partner := testca.New(t, td)
	good := bundleOf(partner)
	seq := good.Clone()
	seq.SetSequenceNumber(7)

	// A bundle whose JWT and WIT authorities share a key ID cannot be
	// marshalled (WIT rule 16).
	key := testca.NewECKey(t).Public()
	unmarshalable := spiffebundle.New(td)
	unmarshalable.SetJWTAuthorities(map[string]crypto.PublicKey{"k1": key})
	unmarshalable.SetWITAuthorities(map[string]crypto.PublicKey{"k1": key})

	otherTD := spiffebundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString("other.test"), []*x509.Certificate{partner.Root()})

	tests := []struct {
		name       string
		method     string
		bundle     *spiffebundle.Bundle
		err        error
		wantStatus int
		wantBundle *spiffebundle.Bundle
		wantLog    string
	}{
		{"GET (Fed rule 10)", http.MethodGet, good, nil, http.StatusOK, good, ""},
		{"GET with sequence number (Fed rule 10)", http.MethodGet, seq, nil, http.StatusOK, seq, ""},
		{"GET empty bundle", http.MethodGet, spiffebundle.New(td), nil, http.StatusOK, spiffebundle.New(td), ""},
		{"POST", http.MethodPost, good, nil, http.StatusMethodNotAllowed, nil, ""},
		{"PUT", http.MethodPut, good, nil, http.StatusMethodNotAllowed, nil, ""},
		{"DELETE", http.MethodDelete, good, nil, http.StatusMethodNotAllowed, nil, ""},
		{"HEAD", http.MethodHead, good, nil, http.StatusMethodNotAllowed, nil, ""},
		{"source fails", http.MethodGet, nil, errors.New("database password rejected"), http.StatusInternalServerError, nil, "database password rejected"},
		{"source returns nothing", http.MethodGet, nil, nil, http.StatusInternalServerError, nil, "source returned no bundle"},
		// Fed rule 23: never serve another trust domain's bundle as td's.
		{"bundle of another trust domain (Fed rule 23)", http.MethodGet, otherTD, nil, http.StatusInternalServerError, nil, "source returned a bundle for trust domain"},
		{"bundle cannot be marshalled", http.MethodGet, unmarshalable, nil, http.StatusInternalServerError, nil, "unable to marshal bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			source := &bundleServer{}
			source.set(tt.bundle, tt.err)
			var logs bytes.Buffer
			h, err := federation.NewHandler(td, source, federation.WithLogger(logger.Writer(&logs)))
			require.NoError(t, err)

			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "https://partner.test/bundle", nil))
			res := rec.Result()
			body, err := io.ReadAll(res.Body)
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, res.StatusCode)

			switch tt.wantStatus {
			case http.StatusOK:
				assert.Equal(t, "application/json", res.Header.Get("Content-Type"))
				got, err := spiffebundle.Parse(td, body)
				require.NoError(t, err)
				assert.True(t, tt.wantBundle.Equal(got))
				assert.Empty(t, logs.String())
			case http.StatusMethodNotAllowed:
				assert.Equal(t, http.MethodGet, res.Header.Get("Allow"))
				assert.Equal(t, 0, source.count(), "the source is not read for other methods")
			case http.StatusInternalServerError:
				// No details leak to the unauthenticated client; they go to
				// the log.
				assert.Equal(t, "unable to serve bundle for \"partner.test\"\n", string(body))
				assert.Contains(t, logs.String(), tt.wantLog)
				assert.Contains(t, logs.String(), "partner.test")
			}
		})
	}
}

func TestNewHandlerConfiguration(t *testing.T) {
	source := bundleOf(testca.New(t, td))
	_, err := federation.NewHandler(spiffeid.TrustDomain{}, source)
	require.EqualError(t, err, "federation: trust domain is required")
	_, err = federation.NewHandler(td, nil)
	require.EqualError(t, err, "federation: bundle source is required")
	_, err = federation.NewHandler(td, source, nil)
	require.EqualError(t, err, "federation: handler configuration is invalid: option is nil")

	// A nil logger discards, as the default does.
	h, err := federation.NewHandler(td, &bundleServer{}, federation.WithLogger(nil))
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code)
}

// TestHandlerOverTLS: the handler serves any client over HTTPS without asking
// for credentials (Fed rule 9), and always the source's current bundle
// (Fed rule 10).
func TestHandlerOverTLS(t *testing.T) {
	partner := testca.New(t, td)
	source := &bundleServer{}
	source.set(bundleOf(partner), nil)
	srv := startSPIFFEServer(t, partner.NewSVID(t, endpointID.Path()), newHandler(t, source))
	auth := federation.WithSPIFFEAuth(bundleOf(partner), endpointID)

	got, err := federation.FetchBundle(t.Context(), td, srv.URL, auth)
	require.NoError(t, err)
	assert.True(t, bundleOf(partner).Equal(got))

	next := bundleOf(partner, testca.New(t, td))
	next.SetSequenceNumber(2)
	source.set(next, nil)
	got, err = federation.FetchBundle(t.Context(), td, srv.URL, auth)
	require.NoError(t, err)
	assert.True(t, next.Equal(got))
}
