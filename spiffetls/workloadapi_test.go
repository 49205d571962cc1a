package spiffetls_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffetls"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// TestWorkloadAPIModes runs every mode that gets its SVID and bundles from
// the Workload API, and checks that the sources the modes create are closed
// with their connection or listener.
func TestWorkloadAPIModes(t *testing.T) {
	td := testca.New(t, exampleOrg)
	web := testca.New(t, webExample)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	cert := testca.TLSCertificate(web.NewSVID(t, "/www", "localhost"))
	serverAPI := startWorkloadAPI(t, td, serverSVID)
	clientAPI := startWorkloadAPI(t, td, clientSVID)

	serverSource, err := workloadapi.NewX509Source(t.Context(), serverAPI.sourceOptions()...)
	require.NoError(t, err)
	defer serverSource.Close()
	clientSource, err := workloadapi.NewX509Source(t.Context(), clientAPI.sourceOptions()...)
	require.NoError(t, err)
	defer clientSource.Close()

	webBase := spiffetls.WithDialTLSConfigBase(&tls.Config{ServerName: "localhost"})
	tests := []struct {
		name       string
		listen     spiffetls.ListenMode
		dial       spiffetls.DialMode
		dialOpts   []spiffetls.DialOption
		ownsServer bool
		ownsClient bool
		serverID   bool // the client learns the server's SPIFFE ID
		clientID   bool // the server learns the client's SPIFFE ID
	}{
		{
			name:       "mTLS with source options",
			listen:     spiffetls.MTLSServerWithSourceOptions(authorizeID(clientSVID.ID), serverAPI.sourceOptions()...),
			dial:       spiffetls.MTLSClientWithSourceOptions(authorizeID(serverSVID.ID), clientAPI.sourceOptions()...),
			ownsServer: true, ownsClient: true, serverID: true, clientID: true,
		},
		{
			name:     "mTLS with sources",
			listen:   spiffetls.MTLSServerWithSource(authorizeID(clientSVID.ID), serverSource),
			dial:     spiffetls.MTLSClientWithSource(authorizeID(serverSVID.ID), clientSource),
			serverID: true, clientID: true,
		},
		{
			name:       "TLS with source options",
			listen:     spiffetls.TLSServerWithSourceOptions(serverAPI.sourceOptions()...),
			dial:       spiffetls.TLSClientWithSourceOptions(authorizeID(serverSVID.ID), clientAPI.sourceOptions()...),
			ownsServer: true, ownsClient: true, serverID: true,
		},
		{
			name:     "TLS with sources",
			listen:   spiffetls.TLSServerWithSource(serverSource),
			dial:     spiffetls.TLSClientWithSource(authorizeID(serverSVID.ID), clientSource),
			serverID: true,
		},
		{
			name:       "mTLS web with source options",
			listen:     spiffetls.MTLSWebServerWithSourceOptions(authorizeID(clientSVID.ID), cert, serverAPI.sourceOptions()...),
			dial:       spiffetls.MTLSWebClientWithSourceOptions(web.RootPool(), clientAPI.sourceOptions()...),
			dialOpts:   []spiffetls.DialOption{webBase},
			ownsServer: true, ownsClient: true, clientID: true,
		},
		{
			name:     "mTLS web with sources",
			listen:   spiffetls.MTLSWebServerWithSource(authorizeID(clientSVID.ID), cert, serverSource),
			dial:     spiffetls.MTLSWebClientWithSource(web.RootPool(), clientSource),
			dialOpts: []spiffetls.DialOption{webBase},
			clientID: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := spiffetls.ListenWithMode(t.Context(), "tcp", "127.0.0.1:0", tt.listen)
			require.NoError(t, err)
			got := serve(t, ln)
			d := dial(t, ln.Addr().String(), tt.dial, tt.dialOpts...)
			require.NoError(t, d.err)
			a := <-got
			require.NoError(t, a.err)
			if tt.serverID {
				require.NoError(t, d.idErr)
				assert.Equal(t, serverSVID.ID, d.id)
			} else {
				assert.Error(t, d.idErr)
			}
			if tt.clientID {
				require.NoError(t, a.idErr)
				assert.Equal(t, clientSVID.ID, a.id)
			} else {
				assert.Error(t, a.idErr)
			}
			// dial closed its connection: the source it created is gone.
			if tt.ownsClient {
				<-clientAPI.ended
			}
			require.NoError(t, ln.Close())
			require.NoError(t, ln.Close(), "Close is idempotent")
			if tt.ownsServer {
				<-serverAPI.ended
			}
		})
	}
}

// TestDefaultModes uses Listen and Dial, which find the Workload API through
// SPIFFE_ENDPOINT_SOCKET.
func TestDefaultModes(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	serverAPI := startWorkloadAPI(t, td, serverSVID)
	clientAPI := startWorkloadAPI(t, td, clientSVID)
	noLeaks := leaktest.Check(t)

	t.Setenv(workloadapi.SocketEnv, serverAPI.addr)
	ln, err := spiffetls.Listen(t.Context(), "tcp", "127.0.0.1:0", authorizeID(clientSVID.ID))
	require.NoError(t, err)
	got := serve(t, ln)

	t.Setenv(workloadapi.SocketEnv, clientAPI.addr)
	conn, err := spiffetls.Dial(t.Context(), "tcp", ln.Addr().String(), authorizeID(serverSVID.ID))
	require.NoError(t, err)
	id, err := spiffetls.PeerIDFromConn(conn)
	require.NoError(t, err)
	assert.Equal(t, serverSVID.ID, id)
	require.NoError(t, conn.Close())
	require.NoError(t, conn.Close(), "Close is idempotent")
	<-clientAPI.ended
	a := <-got
	require.NoError(t, a.err)
	assert.Equal(t, clientSVID.ID, a.id)
	require.NoError(t, ln.Close())
	<-serverAPI.ended

	// The other default modes only differ in the config they hook.
	for _, mode := range []spiffetls.ListenMode{spiffetls.TLSServer(), spiffetls.MTLSWebServer(authorizeAny(), testca.TLSCertificate(serverSVID))} {
		t.Setenv(workloadapi.SocketEnv, serverAPI.addr)
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		l, err := spiffetls.NewListenerWithMode(t.Context(), inner, mode)
		require.NoError(t, err)
		require.NoError(t, l.Close())
		<-serverAPI.ended
	}
	for _, mode := range []spiffetls.DialMode{spiffetls.TLSClient(authorizeAny()), spiffetls.MTLSWebClient(nil)} {
		t.Setenv(workloadapi.SocketEnv, clientAPI.addr)
		// Nothing listens there: the dial fails, and the source the mode
		// created is closed again.
		_, err := spiffetls.DialWithMode(t.Context(), "tcp", "127.0.0.1:1", mode)
		require.Error(t, err)
		<-clientAPI.ended
	}

	// Every source the modes created has stopped its goroutines.
	noLeaks()
}

func TestErrors(t *testing.T) {
	td := testca.New(t, exampleOrg)
	svid := td.NewSVID(t, "/w")
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	noAPI := []workloadapi.X509SourceOption{workloadapi.WithClientOptions(workloadapi.WithAddr("unix:///nonexistent/socket"))}

	t.Run("dial", func(t *testing.T) {
		tests := []struct {
			name string
			ctx  context.Context
			mode spiffetls.DialMode
			want string
		}{
			{"nil mode", t.Context(), nil, "spiffetls: dial mode is required"},
			{"nil source", t.Context(), spiffetls.MTLSClientWithSource(authorizeAny(), nil), "spiffetls: X.509 source is required"},
			{"no Workload API", cancelled, spiffetls.MTLSClientWithSourceOptions(authorizeAny(), noAPI...), "spiffetls: cannot create X.509 source"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := spiffetls.DialWithMode(tt.ctx, "tcp", "127.0.0.1:1", tt.mode, nil)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.want)
			})
		}
	})
	t.Run("listen", func(t *testing.T) {
		inner, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer inner.Close()
		tests := []struct {
			name  string
			ctx   context.Context
			inner net.Listener
			mode  spiffetls.ListenMode
			want  string
		}{
			{"nil inner", t.Context(), nil, spiffetls.TLSServerWithRawConfig(svid), "spiffetls: inner listener is required"},
			{"nil mode", t.Context(), inner, nil, "spiffetls: listen mode is required"},
			{"nil source", t.Context(), inner, spiffetls.TLSServerWithSource(nil), "spiffetls: X.509 source is required"},
			{"no Workload API", cancelled, inner, spiffetls.MTLSServerWithSourceOptions(authorizeAny(), noAPI...), "spiffetls: cannot create X.509 source"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := spiffetls.NewListenerWithMode(tt.ctx, tt.inner, tt.mode, nil)
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.want)
			})
		}
		_, err = spiffetls.NewListener(cancelled, inner, authorizeAny(), nil)
		require.Error(t, err)

		// ListenWithMode closes what it opened when the mode fails.
		_, err = spiffetls.ListenWithMode(t.Context(), "tcp", "127.0.0.1:0", nil)
		require.Error(t, err)
		_, err = spiffetls.ListenWithMode(t.Context(), "bogus", "", spiffetls.TLSServerWithRawConfig(svid))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "spiffetls: unable to listen")
	})
}
