package tlsconfig_test

import (
	"crypto/tls"
	"testing"

	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRotation keeps one listener and one client config alive while both
// sources rotate: every new handshake presents the current SVIDs.
func TestRotation(t *testing.T) {
	td := newTestCA(t, "example.org")
	serverSource := newRotatingSource(td.svid(t, "/server"))
	clientSource := newRotatingSource(td.svid(t, "/client"))
	srv := startServer(t, tlsconfig.MTLSServerConfig(serverSource, td.bundle(), tlsconfig.AuthorizeMemberOf(td.td)))
	clientConf := tlsconfig.MTLSClientConfig(clientSource, td.bundle(), tlsconfig.AuthorizeMemberOf(td.td))

	for i := range 3 {
		if i > 0 {
			serverSource.svid.Store(td.svid(t, "/server"))
			clientSource.svid.Store(td.svid(t, "/client"))
		}
		res := srv.dial(t, clientConf)
		require.NoError(t, res.clientErr, "round %d", i)
		require.NoError(t, res.serverErr, "round %d", i)
		assert.Equal(t, serverSource.svid.Load().Certificates[0].Raw, res.client.PeerCertificates[0].Raw, "round %d", i)
		assert.Equal(t, clientSource.svid.Load().Certificates[0].Raw, res.server.PeerCertificates[0].Raw, "round %d", i)
	}

	// Rotating to an SVID of an untrusted trust domain is noticed at once.
	serverSource.svid.Store(newTestCA(t, "example.org").svid(t, "/server"))
	res := srv.dial(t, clientConf)
	require.Error(t, res.clientErr)
	assert.Contains(t, res.clientErr.Error(), "x509svid: could not verify leaf certificate")
}

// TestRotationUnderResumption rotates the server's bundle: a client holding
// a session from before, whether it resumes it or not, is checked against
// the new bundle.
func TestRotationUnderResumption(t *testing.T) {
	oldCA := newTestCA(t, "example.org")
	newCA := newTestCA(t, "example.org")
	bundles := &bundleSource{}
	bundles.b.Store(oldCA.bundle())
	serverConf := tlsconfig.MTLSServerConfig(oldCA.svid(t, "/server"), bundles, tlsconfig.AuthorizeAny())
	srv := startServer(t, serverConf)

	clientConf := tlsconfig.MTLSClientConfig(oldCA.svid(t, "/client"), oldCA.bundle(), tlsconfig.AuthorizeAny())
	clientConf.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	res := srv.dial(t, clientConf)
	require.NoError(t, res.serverErr)

	bundles.b.Store(newCA.bundle())
	res = srv.dial(t, clientConf)
	require.Error(t, res.serverErr)
	assert.Contains(t, res.serverErr.Error(), "x509svid: could not verify leaf certificate")
}
