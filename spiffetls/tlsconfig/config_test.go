package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMTLS(t *testing.T) {
	td := testca.New(t, exampleOrg)
	other := testca.New(t, otherOrg)
	serverSVID := td.NewSVID(t, "/server")
	clientSVID := td.NewSVID(t, "/client")
	foreignClient := other.NewSVID(t, "/client")
	serverID, clientID := serverSVID.ID, clientSVID.ID
	bundles := td.X509Bundle()
	both := x509bundle.NewSet(td.X509Bundle(), other.X509Bundle())

	tests := []struct {
		name             string
		clientSVID       x509svid.Source
		serverBundle     x509bundle.Source
		serverAuthorizer tlsconfig.Authorizer
		clientAuthorizer tlsconfig.Authorizer
		serverErr        string
		clientErr        string
	}{
		{
			name:             "authorized by ID",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeID(clientID),
			clientAuthorizer: tlsconfig.AuthorizeID(serverID),
		},
		{
			name:             "authorized by trust domain",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeMemberOf(td.TrustDomain()),
			clientAuthorizer: tlsconfig.AuthorizeOneOf(clientID, serverID),
		},
		{
			name:             "authorized by prefix and any",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeIDPrefix(clientID),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
		},
		{
			name:             "server rejects wrong client ID",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeID(spiffeid.RequireFromPath(td.TrustDomain(), "/someone-else")),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        `tlsconfig: peer "spiffe://example.org/client" is not authorized: spiffeid: unexpected ID`,
		},
		{
			name:             "client rejects wrong server ID",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeAny(),
			clientAuthorizer: tlsconfig.AuthorizeID(clientID),
			clientErr:        `tlsconfig: peer "spiffe://example.org/server" is not authorized`,
		},
		{
			// X509 rule 20: a client of another trust domain is verified
			// against that trust domain's bundle, which the server lacks.
			name:             "server rejects unknown trust domain",
			clientSVID:       foreignClient,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeAny(),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        "x509svid: could not get X509 bundle",
		},
		{
			name:             "server rejects federated trust domain by authorizer",
			clientSVID:       foreignClient,
			serverBundle:     both,
			serverAuthorizer: tlsconfig.AuthorizeMemberOf(td.TrustDomain()),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        `spiffeid: unexpected trust domain "other.org"`,
		},
		{
			name:             "server accepts federated trust domain",
			clientSVID:       foreignClient,
			serverBundle:     both,
			serverAuthorizer: tlsconfig.AuthorizeMemberOf(other.TrustDomain()),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
		},
		{
			name:             "nil authorizer rejects",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: nil,
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        "tlsconfig: authorizer is required",
		},
		{
			name:             "nil matcher rejects",
			clientSVID:       clientSVID,
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AdaptMatcher(nil),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        "tlsconfig: matcher is required",
		},
		{
			name:             "client source fails",
			clientSVID:       failingSource{err: errors.New("boom")},
			serverBundle:     bundles,
			serverAuthorizer: tlsconfig.AuthorizeAny(),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			clientErr:        "boom",
		},
		{
			name:             "bundle source fails",
			clientSVID:       clientSVID,
			serverBundle:     failingSource{err: errors.New("no bundles")},
			serverAuthorizer: tlsconfig.AuthorizeAny(),
			clientAuthorizer: tlsconfig.AuthorizeAny(),
			serverErr:        "x509svid: could not get X509 bundle: no bundles",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverConf := tlsconfig.MTLSServerConfig(serverSVID, tt.serverBundle, tt.serverAuthorizer)
			clientConf := tlsconfig.MTLSClientConfig(tt.clientSVID, bundles, tt.clientAuthorizer)
			res := handshake(t, serverConf, clientConf)
			switch {
			case tt.serverErr != "":
				require.Error(t, res.serverErr)
				assert.Contains(t, res.serverErr.Error(), tt.serverErr)
				assert.Error(t, res.clientErr)
			case tt.clientErr != "":
				require.Error(t, res.clientErr)
				assert.Contains(t, res.clientErr.Error(), tt.clientErr)
				assert.Error(t, res.serverErr)
			default:
				require.NoError(t, res.serverErr)
				require.NoError(t, res.clientErr)
				assert.Equal(t, serverSVID.Certificates[0].Raw, res.client.PeerCertificates[0].Raw)
				assert.Equal(t, tt.clientSVID.(*x509svid.SVID).Certificates[0].Raw, res.server.PeerCertificates[0].Raw)
			}
		})
	}
}

func TestMTLSServerRequiresClientCertificate(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverConf := tlsconfig.MTLSServerConfig(td.NewSVID(t, "/server"), td.X509Bundle(), tlsconfig.AuthorizeAny())
	// A TLS-only client presents no certificate.
	res := handshake(t, serverConf, tlsconfig.TLSClientConfig(td.X509Bundle(), tlsconfig.AuthorizeAny()))
	require.Error(t, res.serverErr)
	assert.Contains(t, res.serverErr.Error(), "client didn't provide a certificate")
	assert.Error(t, res.clientErr)
}

func TestAuthorizerErrorIsWrapped(t *testing.T) {
	td := testca.New(t, exampleOrg)
	var c counter
	c.reject.Store(true)
	serverConf := tlsconfig.MTLSServerConfig(td.NewSVID(t, "/server"), td.X509Bundle(), c.authorize)
	res := handshake(t, serverConf, tlsconfig.MTLSClientConfig(td.NewSVID(t, "/client"), td.X509Bundle(), tlsconfig.AuthorizeAny()))
	require.ErrorIs(t, res.serverErr, errRejected)
}

func TestTLS(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID := td.NewSVID(t, "/server")
	serverConf := tlsconfig.TLSServerConfig(serverSVID)
	assert.Equal(t, tls.NoClientCert, serverConf.ClientAuth)

	t.Run("authorized", func(t *testing.T) {
		res := handshake(t, serverConf, tlsconfig.TLSClientConfig(td.X509Bundle(), tlsconfig.AuthorizeID(serverSVID.ID)))
		require.NoError(t, res.clientErr)
		require.NoError(t, res.serverErr)
		assert.Empty(t, res.server.PeerCertificates)
	})
	t.Run("rejected", func(t *testing.T) {
		other := spiffeid.RequireFromPath(td.TrustDomain(), "/other")
		res := handshake(t, serverConf, tlsconfig.TLSClientConfig(td.X509Bundle(), tlsconfig.AuthorizeID(other)))
		require.Error(t, res.clientErr)
		assert.Contains(t, res.clientErr.Error(), "is not authorized")
	})
	t.Run("client ignores its SVID", func(t *testing.T) {
		// An mTLS client can talk to a TLS-only server: it is not asked for
		// a certificate.
		res := handshake(t, serverConf, tlsconfig.MTLSClientConfig(td.NewSVID(t, "/client"), td.X509Bundle(), tlsconfig.AuthorizeAny()))
		require.NoError(t, res.clientErr)
		require.NoError(t, res.serverErr)
	})
}

func TestMTLSWeb(t *testing.T) {
	td := testca.New(t, exampleOrg)
	web := testca.New(t, webExample)
	// The web certificate is an SVID with a DNS name, so that ordinary
	// host name verification works against web's root.
	webSVID := web.NewSVID(t, "/www", "localhost")
	webCert, err := tlsconfig.GetCertificate(webSVID)(nil)
	require.NoError(t, err)
	clientSVID := td.NewSVID(t, "/client")

	serverConf := tlsconfig.MTLSWebServerConfig(webCert, td.X509Bundle(), tlsconfig.AuthorizeID(clientSVID.ID))
	t.Run("authorized", func(t *testing.T) {
		clientConf := tlsconfig.MTLSWebClientConfig(clientSVID, web.RootPool())
		clientConf.ServerName = "localhost"
		res := handshake(t, serverConf, clientConf)
		require.NoError(t, res.clientErr)
		require.NoError(t, res.serverErr)
		assert.Equal(t, clientSVID.Certificates[0].Raw, res.server.PeerCertificates[0].Raw)
		assert.NotEmpty(t, res.client.VerifiedChains)
	})
	t.Run("wrong host name", func(t *testing.T) {
		clientConf := tlsconfig.MTLSWebClientConfig(clientSVID, web.RootPool())
		clientConf.ServerName = "example.com"
		res := handshake(t, serverConf, clientConf)
		require.Error(t, res.clientErr)
		var hostErr x509.HostnameError
		assert.ErrorAs(t, res.clientErr, &hostErr)
	})
	t.Run("system roots do not trust the web CA", func(t *testing.T) {
		clientConf := tlsconfig.MTLSWebClientConfig(clientSVID, nil)
		clientConf.ServerName = "localhost"
		res := handshake(t, serverConf, clientConf)
		require.Error(t, res.clientErr)
	})
	t.Run("client not authorized", func(t *testing.T) {
		clientConf := tlsconfig.MTLSWebClientConfig(td.NewSVID(t, "/intruder"), web.RootPool())
		clientConf.ServerName = "localhost"
		res := handshake(t, serverConf, clientConf)
		require.Error(t, res.serverErr)
		assert.Contains(t, res.serverErr.Error(), "is not authorized")
	})
	t.Run("nil certificate", func(t *testing.T) {
		conf := tlsconfig.MTLSWebServerConfig(nil, td.X509Bundle(), tlsconfig.AuthorizeAny())
		assert.Empty(t, conf.Certificates)
		clientConf := tlsconfig.MTLSWebClientConfig(clientSVID, web.RootPool())
		clientConf.ServerName = "localhost"
		res := handshake(t, conf, clientConf)
		require.Error(t, res.serverErr)
	})
}

func TestConfigsAreFresh(t *testing.T) {
	td := testca.New(t, exampleOrg)
	svid := td.NewSVID(t, "/w")
	a := tlsconfig.MTLSServerConfig(svid, td.X509Bundle(), tlsconfig.AuthorizeAny())
	b := tlsconfig.MTLSServerConfig(svid, td.X509Bundle(), tlsconfig.AuthorizeAny())
	require.NotSame(t, a, b)
	for _, c := range []*tls.Config{
		a,
		tlsconfig.MTLSClientConfig(svid, td.X509Bundle(), tlsconfig.AuthorizeAny()),
		tlsconfig.TLSClientConfig(td.X509Bundle(), tlsconfig.AuthorizeAny()),
		tlsconfig.TLSServerConfig(svid),
		tlsconfig.MTLSWebClientConfig(svid, nil),
		tlsconfig.MTLSWebServerConfig(&tls.Certificate{}, td.X509Bundle(), tlsconfig.AuthorizeAny()),
	} {
		assert.Equal(t, uint16(tls.VersionTLS12), c.MinVersion)
		// Authorization must not depend on VerifyPeerCertificate, which
		// resumed sessions skip.
		assert.Nil(t, c.VerifyPeerCertificate)
	}
}
