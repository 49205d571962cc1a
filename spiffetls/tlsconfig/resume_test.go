package tlsconfig_test

import (
	"crypto/tls"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestResumedSessionIsAuthorizedAgain resumes TLS sessions and checks that
// both authorizers run on the resumed handshake and can reject it, which a
// check in VerifyPeerCertificate alone would miss.
func TestResumedSessionIsAuthorizedAgain(t *testing.T) {
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			for _, side := range []string{"server", "client"} {
				t.Run(side+" rejects", func(t *testing.T) {
					testResumption(t, version, side)
				})
			}
		})
	}
}

func testResumption(t *testing.T, version uint16, rejectingSide string) {
	td := testca.New(t, exampleOrg)
	var serverAuth, clientAuth counter
	serverConf := tlsconfig.MTLSServerConfig(td.NewSVID(t, "/server"), td.X509Bundle(), serverAuth.authorize)
	serverConf.MaxVersion = version
	srv := startServer(t, serverConf)

	clientConf := tlsconfig.MTLSClientConfig(td.NewSVID(t, "/client"), td.X509Bundle(), clientAuth.authorize)
	clientConf.MaxVersion = version
	clientConf.ClientSessionCache = tls.NewLRUClientSessionCache(8)

	// A full handshake stores a session.
	res := srv.dial(t, clientConf)
	require.NoError(t, res.clientErr)
	require.NoError(t, res.serverErr)
	require.False(t, res.client.DidResume)
	require.Equal(t, version, res.client.Version)
	assert.Equal(t, int32(1), serverAuth.calls.Load())
	assert.Equal(t, int32(1), clientAuth.calls.Load())

	// The next connection resumes it, and both authorizers run again.
	res = srv.dial(t, clientConf)
	require.NoError(t, res.clientErr)
	require.NoError(t, res.serverErr)
	require.True(t, res.client.DidResume, "session was not resumed")
	require.True(t, res.server.DidResume)
	assert.Equal(t, int32(2), serverAuth.calls.Load())
	assert.Equal(t, int32(2), clientAuth.calls.Load())

	// Once the authorizer rejects the peer, resuming fails.
	rejecting := &serverAuth
	if rejectingSide == "client" {
		rejecting = &clientAuth
	}
	rejecting.reject.Store(true)
	res = srv.dial(t, clientConf)
	if rejectingSide == "server" {
		require.ErrorIs(t, res.serverErr, errRejected)
	} else {
		require.ErrorIs(t, res.clientErr, errRejected)
	}
	assert.Equal(t, int32(3), rejecting.calls.Load())
}
