// The issuing server and the node agent run on Linux only (hence the file's
// name); a Windows client of this package is tested by the other tests.

package oauthsvid_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/exp/oauthsvid"
	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/server"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// TestWithServerAndAgent authenticates to a token endpoint with the SVIDs
// that a real issuing server and node agent give the test process, by both
// methods, the authorization server trusting the server's bundle; an
// assertion for a wrong audience is refused.
func TestWithServerAndAgent(t *testing.T) {
	s := nodetest.StartServer(t, server.Config{})
	a := nodetest.StartAgent(t, s.AgentConfig(t))
	id := spiffeid.RequireFromPath(s.TrustDomain(), "/billing")
	s.Register(t, a.ID(), "/billing")
	a.WaitSVID(t, id)

	opts := workloadapi.WithClientOptions(workloadapi.WithAddr(a.Addr))
	jwtSource, err := workloadapi.NewJWTSource(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { jwtSource.Close() })
	x509Source, err := workloadapi.NewX509Source(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { x509Source.Close() })

	bundle := s.Bundle()
	v, err := oauthsvid.NewValidator(oauthsvid.Config{
		Issuer:      issuer,
		JWTBundles:  bundle.JWTBundle(),
		X509Bundles: bundle.X509Bundle(),
		Clients:     oauthsvid.Registry{id.String(): oauthsvid.MustParsePattern(id.String())},
	})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(tokenEndpoint(v))
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	hc := srv.Client()
	t.Cleanup(hc.CloseIdleConnections)
	mtls := oauthsvid.MTLSHTTPClient(x509Source, roots)
	t.Cleanup(mtls.CloseIdleConnections)
	grant := url.Values{"grant_type": {"client_credentials"}}

	jwtClient := &oauthsvid.Client{TokenURL: srv.URL + "/token", Audience: issuer, JWTSource: jwtSource, ID: id, HTTPClient: hc}
	tok, err := jwtClient.Token(t.Context(), grant)
	require.NoError(t, err)
	assert.Equal(t, "at-for-"+id.String(), tok.AccessToken)

	x509Client := &oauthsvid.Client{TokenURL: srv.URL + "/token", ID: id, HTTPClient: mtls}
	tok, err = x509Client.Token(t.Context(), grant)
	require.NoError(t, err)
	assert.Equal(t, "at-for-"+id.String(), tok.AccessToken)

	wrong := *jwtClient
	wrong.Audience = "https://other.example"
	_, err = wrong.Token(t.Context(), grant)
	e, ok := errors.AsType[*oauthsvid.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "invalid_client", e.Code)
}
