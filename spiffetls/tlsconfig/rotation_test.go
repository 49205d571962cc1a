package tlsconfig_test

import (
	"crypto/tls"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRotation keeps one listener and one client config alive while both
// sources rotate: every new handshake presents the current SVIDs.
func TestRotation(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSource := testca.NewX509Source(td.NewSVID(t, "/server"))
	clientSource := testca.NewX509Source(td.NewSVID(t, "/client"))
	srv := startServer(t, tlsconfig.MTLSServerConfig(serverSource, td.X509Bundle(), tlsconfig.AuthorizeMemberOf(td.TrustDomain())))
	clientConf := tlsconfig.MTLSClientConfig(clientSource, td.X509Bundle(), tlsconfig.AuthorizeMemberOf(td.TrustDomain()))

	for i := range 3 {
		if i > 0 {
			serverSource.Set(td.NewSVID(t, "/server"))
			clientSource.Set(td.NewSVID(t, "/client"))
		}
		res := srv.dial(t, clientConf)
		require.NoError(t, res.clientErr, "round %d", i)
		require.NoError(t, res.serverErr, "round %d", i)
		assert.Equal(t, serverSource.SVID().Certificates[0].Raw, res.client.PeerCertificates[0].Raw, "round %d", i)
		assert.Equal(t, clientSource.SVID().Certificates[0].Raw, res.server.PeerCertificates[0].Raw, "round %d", i)
	}

	// Rotating to an SVID of an untrusted trust domain is noticed at once.
	serverSource.Set(testca.New(t, exampleOrg).NewSVID(t, "/server"))
	res := srv.dial(t, clientConf)
	require.Error(t, res.clientErr)
	assert.Contains(t, res.clientErr.Error(), "x509svid: could not verify leaf certificate")
}

// TestRotationUnderResumption rotates the server's bundle: a client holding
// a session from before, whether it resumes it or not, is checked against
// the new bundle.
func TestRotationUnderResumption(t *testing.T) {
	oldCA := testca.New(t, exampleOrg)
	newCA := testca.New(t, exampleOrg)
	bundles := &bundleSource{}
	bundles.b.Store(oldCA.X509Bundle())
	serverConf := tlsconfig.MTLSServerConfig(oldCA.NewSVID(t, "/server"), bundles, tlsconfig.AuthorizeAny())
	srv := startServer(t, serverConf)

	clientConf := tlsconfig.MTLSClientConfig(oldCA.NewSVID(t, "/client"), oldCA.X509Bundle(), tlsconfig.AuthorizeAny())
	clientConf.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	res := srv.dial(t, clientConf)
	require.NoError(t, res.serverErr)

	bundles.b.Store(newCA.X509Bundle())
	res = srv.dial(t, clientConf)
	require.Error(t, res.serverErr)
	assert.Contains(t, res.serverErr.Error(), "x509svid: could not verify leaf certificate")
}
