package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHookKeepsCallbacks(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")

	var order []string
	base := &tls.Config{
		MinVersion: tls.VersionTLS10,
		NextProtos: []string{"proto"},
		VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
			order = append(order, "peer")
			assert.Len(t, raw, len(clientSVID.Certificates))
			require.NotEmpty(t, chains)
			assert.Equal(t, td.Root().Raw, chains[0][len(chains[0])-1].Raw)
			return nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			order = append(order, "conn")
			assert.NotEmpty(t, cs.VerifiedChains, "SPIFFE chains are passed on")
			return nil
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			t.Error("GetConfigForClient must be cleared")
			return nil, nil
		},
		Certificates: []tls.Certificate{{}},
		ClientCAs:    x509.NewCertPool(),
	}
	var auth counter
	tlsconfig.HookMTLSServerConfig(base, serverSVID, td.X509Bundle(), func(id spiffeid.ID, chains [][]*x509.Certificate) error {
		order = append(order, "authorize")
		return auth.authorize(id, chains)
	})
	assert.Equal(t, uint16(tls.VersionTLS12), base.MinVersion)
	assert.Equal(t, []string{"proto"}, base.NextProtos)
	assert.Nil(t, base.Certificates)
	assert.Nil(t, base.ClientCAs)
	assert.Nil(t, base.GetConfigForClient)
	assert.Nil(t, base.VerifyPeerCertificate)
	assert.Equal(t, tls.RequireAnyClientCert, base.ClientAuth)

	clientConf := tlsconfig.MTLSClientConfig(clientSVID, td.X509Bundle(), tlsconfig.AuthorizeAny())
	clientConf.NextProtos = []string{"proto"}
	res := handshake(t, base, clientConf)
	require.NoError(t, res.serverErr)
	require.NoError(t, res.clientErr)
	assert.Equal(t, []string{"authorize", "peer", "conn"}, order)

	// A rejected peer never reaches the wrapped callbacks.
	order = nil
	auth.reject.Store(true)
	res = handshake(t, base, clientConf)
	require.ErrorIs(t, res.serverErr, errRejected)
	assert.Equal(t, []string{"authorize"}, order)
}

func TestHookWrappedCallbackErrors(t *testing.T) {
	td := testca.New(t, exampleOrg)
	errPeer, errConn := errors.New("peer callback"), errors.New("conn callback")
	tests := []struct {
		name string
		base *tls.Config
		want error
	}{
		{"VerifyPeerCertificate", &tls.Config{VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error { return errPeer }}, errPeer},
		{"VerifyConnection", &tls.Config{VerifyConnection: func(tls.ConnectionState) error { return errConn }}, errConn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tlsconfig.HookTLSClientConfig(tt.base, td.X509Bundle(), tlsconfig.AuthorizeAny())
			assert.True(t, tt.base.InsecureSkipVerify)
			res := handshake(t, tlsconfig.TLSServerConfig(td.NewSVID(t, "/server")), tt.base)
			require.ErrorIs(t, res.clientErr, tt.want)
		})
	}
}

func TestHookEveryMode(t *testing.T) {
	td := testca.New(t, exampleOrg)
	svid := td.NewSVID(t, "/w")
	cert, err := tlsconfig.GetCertificate(svid)(nil)
	require.NoError(t, err)
	stale := func() *tls.Config {
		return &tls.Config{
			InsecureSkipVerify: true,
			RootCAs:            x509.NewCertPool(),
			ClientAuth:         tls.RequireAndVerifyClientCert,
			GetCertificate:     func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil },
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				return nil, nil
			},
		}
	}
	pool := td.RootPool()

	c := stale()
	tlsconfig.HookTLSServerConfig(c, svid)
	assert.NotNil(t, c.GetCertificate)
	assert.Nil(t, c.GetClientCertificate)
	assert.Equal(t, tls.NoClientCert, c.ClientAuth)
	assert.False(t, c.InsecureSkipVerify)
	assert.Nil(t, c.RootCAs)
	assert.Nil(t, c.VerifyConnection)

	c = stale()
	tlsconfig.HookMTLSWebClientConfig(c, svid, pool)
	assert.Same(t, pool, c.RootCAs)
	assert.False(t, c.InsecureSkipVerify)
	assert.Nil(t, c.GetCertificate)
	assert.NotNil(t, c.GetClientCertificate)

	c = stale()
	tlsconfig.HookMTLSWebServerConfig(c, cert, td.X509Bundle(), tlsconfig.AuthorizeAny())
	require.Len(t, c.Certificates, 1)
	assert.Equal(t, cert.Certificate, c.Certificates[0].Certificate)
	assert.Nil(t, c.GetCertificate)
	assert.NotNil(t, c.VerifyConnection)

	c = stale()
	tlsconfig.HookMTLSClientConfig(c, svid, td.X509Bundle(), tlsconfig.AuthorizeAny())
	assert.True(t, c.InsecureSkipVerify)
	assert.Nil(t, c.RootCAs)
	assert.Nil(t, c.GetCertificate)
	assert.NotNil(t, c.GetClientCertificate)
	assert.Equal(t, tls.NoClientCert, c.ClientAuth)

	// A nil config is ignored rather than dereferenced.
	assert.NotPanics(t, func() {
		tlsconfig.HookTLSClientConfig(nil, td.X509Bundle(), tlsconfig.AuthorizeAny())
		tlsconfig.HookMTLSClientConfig(nil, svid, td.X509Bundle(), tlsconfig.AuthorizeAny())
		tlsconfig.HookMTLSWebClientConfig(nil, svid, nil)
		tlsconfig.HookTLSServerConfig(nil, svid)
		tlsconfig.HookMTLSServerConfig(nil, svid, td.X509Bundle(), tlsconfig.AuthorizeAny())
		tlsconfig.HookMTLSWebServerConfig(nil, cert, td.X509Bundle(), tlsconfig.AuthorizeAny())
	})
}
