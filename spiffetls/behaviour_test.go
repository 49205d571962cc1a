package spiffetls_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// TestResumedSessionIsAuthorizedAgain resumes a session through Dial and a
// listener of this package and expects the listener's authorizer to run on
// the resumed handshake, and to be able to reject it.
func TestResumedSessionIsAuthorizedAgain(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	var auth counter
	addr, got := listen(t, spiffetls.MTLSServerWithRawConfig(auth.authorize, serverSVID, td.X509Bundle()))
	base := &tls.Config{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	mode := spiffetls.MTLSClientWithRawConfig(authorizeAny(), clientSVID, td.X509Bundle())

	for i, wantResume := range []bool{false, true} {
		d := dial(t, addr, mode, spiffetls.WithDialTLSConfigBase(base))
		require.NoError(t, d.err)
		a := <-got
		require.NoError(t, a.err)
		assert.Equal(t, wantResume, a.state.DidResume, "connection %d", i)
		assert.Equal(t, clientSVID.ID, a.id)
	}
	assert.Equal(t, int32(2), auth.calls.Load())

	auth.reject.Store(true)
	d := dial(t, addr, mode, spiffetls.WithDialTLSConfigBase(base))
	assert.Error(t, d.err)
	a := <-got
	require.ErrorIs(t, a.err, errRejected)
	assert.Equal(t, int32(3), auth.calls.Load())
}

// TestRotation keeps one listener while its X509-SVID rotates.
func TestRotation(t *testing.T) {
	td := testca.New(t, exampleOrg)
	source := &testca.X509Source{}
	source.Set(td.NewSVID(t, "/server"))
	addr, got := listen(t, spiffetls.MTLSServerWithRawConfig(authorizeAny(), source, td.X509Bundle()))
	clientSVID := td.NewSVID(t, "/client")

	for i := range 3 {
		if i > 0 {
			source.Set(td.NewSVID(t, "/server"))
		}
		conn, err := spiffetls.DialWithMode(t.Context(), "tcp", addr,
			spiffetls.MTLSClientWithRawConfig(authorizeAny(), clientSVID, td.X509Bundle()))
		require.NoError(t, err)
		tc := conn.(interface{ ConnectionState() tls.ConnectionState })
		assert.Equal(t, source.SVID().Certificates[0].Raw, tc.ConnectionState().PeerCertificates[0].Raw, "round %d", i)
		require.NoError(t, conn.Close())
		require.NoError(t, (<-got).err)
	}
}

// TestDialHonoursContext cancels the context while the server holds the
// connection without answering the handshake.
func TestDialHonoursContext(t *testing.T) {
	td := testca.New(t, exampleOrg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
			cancel() // the client is now waiting for the server's hello
		}
	}()

	_, err = spiffetls.DialWithMode(ctx, "tcp", ln.Addr().String(),
		spiffetls.MTLSClientWithRawConfig(authorizeAny(), td.NewSVID(t, "/client"), td.X509Bundle()))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "spiffetls: unable to dial")
	(<-accepted).Close()
}

// TestBaseConfigIsNotChanged reuses one base config for many dials and
// listeners; it must stay as the caller made it.
func TestBaseConfigIsNotChanged(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	var peerCalls counter
	verify := func(raw [][]byte, chains [][]*x509.Certificate) error {
		return peerCalls.authorize(serverSVID.ID, chains)
	}
	base := &tls.Config{MinVersion: tls.VersionTLS13, VerifyPeerCertificate: verify}
	listenBase := &tls.Config{MinVersion: tls.VersionTLS13}

	addr, got := listen(t, spiffetls.MTLSServerWithRawConfig(authorizeAny(), serverSVID, td.X509Bundle()),
		spiffetls.WithListenTLSConfigBase(listenBase))
	for range 3 {
		d := dial(t, addr, spiffetls.MTLSClientWithRawConfig(authorizeAny(), clientSVID, td.X509Bundle()),
			spiffetls.WithDialTLSConfigBase(base))
		require.NoError(t, d.err)
		require.NoError(t, (<-got).err)
	}
	// The base's own callback ran once per dial, wrapped once each time.
	assert.Equal(t, int32(3), peerCalls.calls.Load())
	assert.NotNil(t, base.VerifyPeerCertificate)
	assert.Nil(t, base.VerifyConnection)
	assert.Nil(t, base.GetClientCertificate)
	assert.False(t, base.InsecureSkipVerify)
	assert.Nil(t, listenBase.GetCertificate)
	assert.Nil(t, listenBase.VerifyConnection)
	assert.Equal(t, tls.NoClientCert, listenBase.ClientAuth)
}

func TestTLSOptions(t *testing.T) {
	td := testca.New(t, exampleOrg)
	var serverFetches, clientFetches atomic.Int32
	traceTo := func(n *atomic.Int32) tlsconfig.Option {
		return tlsconfig.WithTrace(tlsconfig.Trace{GetCertificate: func(tlsconfig.GetCertificateInfo) any {
			n.Add(1)
			return nil
		}})
	}
	addr, got := listen(t, spiffetls.MTLSServerWithRawConfig(authorizeAny(), td.NewSVID(t, "/server"), td.X509Bundle()),
		spiffetls.WithListenTLSOptions(traceTo(&serverFetches)))
	d := dial(t, addr, spiffetls.MTLSClientWithRawConfig(authorizeAny(), td.NewSVID(t, "/client"), td.X509Bundle()),
		spiffetls.WithDialTLSOptions(traceTo(&clientFetches)), spiffetls.WithDialer(&net.Dialer{}))
	require.NoError(t, d.err)
	require.NoError(t, (<-got).err)
	assert.Equal(t, int32(1), serverFetches.Load())
	assert.Equal(t, int32(1), clientFetches.Load())
}
