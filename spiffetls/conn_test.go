package spiffetls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls"
)

// accepted is what the server saw on one connection.
type accepted struct {
	err   error // handshake
	id    spiffeid.ID
	idErr error
	state tls.ConnectionState
}

// serve accepts on ln until it closes: for each connection it completes the
// handshake, reads the peer ID, writes "ok" and waits for the client to
// close. Results arrive on the returned channel.
func serve(t *testing.T, ln net.Listener) <-chan accepted {
	t.Helper()
	out := make(chan accepted, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				tc := conn.(interface {
					Handshake() error
					ConnectionState() tls.ConnectionState
				})
				var a accepted
				if a.err = tc.Handshake(); a.err == nil {
					a.state = tc.ConnectionState()
					a.id, a.idErr = spiffetls.PeerIDFromConn(conn)
					_, _ = io.WriteString(conn, "ok")
					_, _ = io.Copy(io.Discard, conn)
				}
				out <- a
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return out
}

// dialed is what the client saw.
type dialed struct {
	id    spiffeid.ID
	idErr error
	err   error
}

// dial connects with mode, reads the server's ID and the server's "ok".
func dial(t *testing.T, addr string, mode spiffetls.DialMode, options ...spiffetls.DialOption) dialed {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := spiffetls.DialWithMode(ctx, "tcp", addr, mode, options...)
	if err != nil {
		return dialed{err: err}
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	var d dialed
	d.id, d.idErr = spiffetls.PeerIDFromConn(conn)
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil {
		d.err = err
	} else if string(buf) != "ok" {
		d.err = errors.New("unexpected data")
	}
	return d
}

func listen(t *testing.T, mode spiffetls.ListenMode, options ...spiffetls.ListenOption) (string, <-chan accepted) {
	t.Helper()
	ln, err := spiffetls.ListenWithMode(t.Context(), "tcp", "127.0.0.1:0", mode, options...)
	require.NoError(t, err)
	return ln.Addr().String(), serve(t, ln)
}

func TestRawModes(t *testing.T) {
	td := testca.New(t, exampleOrg)
	web := testca.New(t, webExample)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	cert := testca.TLSCertificate(web.NewSVID(t, "/www", "localhost"))
	bundle := td.X509Bundle()

	t.Run("mTLS", func(t *testing.T) {
		addr, got := listen(t, spiffetls.MTLSServerWithRawConfig(authorizeID(clientSVID.ID), serverSVID, bundle))
		d := dial(t, addr, spiffetls.MTLSClientWithRawConfig(authorizeID(serverSVID.ID), clientSVID, bundle))
		require.NoError(t, d.err)
		require.NoError(t, d.idErr)
		assert.Equal(t, serverSVID.ID, d.id)
		a := <-got
		require.NoError(t, a.err)
		require.NoError(t, a.idErr)
		assert.Equal(t, clientSVID.ID, a.id)
	})
	t.Run("TLS", func(t *testing.T) {
		addr, got := listen(t, spiffetls.TLSServerWithRawConfig(serverSVID))
		d := dial(t, addr, spiffetls.TLSClientWithRawConfig(authorizeID(serverSVID.ID), bundle))
		require.NoError(t, d.err)
		require.NoError(t, d.idErr)
		assert.Equal(t, serverSVID.ID, d.id)
		a := <-got
		require.NoError(t, a.err)
		// Clients of a TLS-only listener are anonymous.
		require.Error(t, a.idErr)
		assert.Contains(t, a.idErr.Error(), "spiffetls: peer is not authenticated by SPIFFE ID")
	})
	t.Run("mTLS web", func(t *testing.T) {
		addr, got := listen(t, spiffetls.MTLSWebServerWithRawConfig(authorizeID(clientSVID.ID), cert, bundle))
		base := &tls.Config{ServerName: "localhost"}
		d := dial(t, addr, spiffetls.MTLSWebClientWithRawConfig(web.RootPool(), clientSVID), spiffetls.WithDialTLSConfigBase(base))
		require.NoError(t, d.err)
		// The web certificate carries a URI SAN, but it was verified as a
		// web certificate, so it is not reported as a SPIFFE ID.
		require.Error(t, d.idErr)
		assert.Contains(t, d.idErr.Error(), "spiffetls: peer is not authenticated by SPIFFE ID")
		a := <-got
		require.NoError(t, a.err)
		require.NoError(t, a.idErr)
		assert.Equal(t, clientSVID.ID, a.id)
	})
}

func TestRejections(t *testing.T) {
	td := testca.New(t, exampleOrg)
	other := testca.New(t, otherOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	bundle := td.X509Bundle()

	tests := []struct {
		name      string
		listen    spiffetls.ListenMode
		dial      spiffetls.DialMode
		serverErr string
		clientErr string
	}{
		{
			name:      "server rejects wrong client ID",
			listen:    spiffetls.MTLSServerWithRawConfig(authorizeID(spiffeid.RequireFromPath(td.TrustDomain(), "/other")), serverSVID, bundle),
			dial:      spiffetls.MTLSClientWithRawConfig(authorizeID(serverSVID.ID), clientSVID, bundle),
			serverErr: `tlsconfig: peer "spiffe://example.org/client" is not authorized`,
		},
		{
			name:      "client rejects wrong server ID",
			listen:    spiffetls.MTLSServerWithRawConfig(authorizeID(clientSVID.ID), serverSVID, bundle),
			dial:      spiffetls.MTLSClientWithRawConfig(authorizeID(clientSVID.ID), clientSVID, bundle),
			clientErr: `tlsconfig: peer "spiffe://example.org/server" is not authorized`,
		},
		{
			// X509 rule 20: a client from a trust domain whose bundle the
			// server lacks cannot be verified.
			name:      "server rejects other trust domain",
			listen:    spiffetls.MTLSServerWithRawConfig(authorizeAny(), serverSVID, bundle),
			dial:      spiffetls.MTLSClientWithRawConfig(authorizeAny(), other.NewSVID(t, "/client"), bundle),
			serverErr: "x509svid: could not get X509 bundle",
		},
		{
			name:      "server requires client certificate",
			listen:    spiffetls.MTLSServerWithRawConfig(authorizeAny(), serverSVID, bundle),
			dial:      spiffetls.TLSClientWithRawConfig(authorizeAny(), bundle),
			serverErr: "client didn't provide a certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, got := listen(t, tt.listen)
			d := dial(t, addr, tt.dial)
			a := <-got
			if tt.serverErr != "" {
				require.Error(t, a.err)
				assert.Contains(t, a.err.Error(), tt.serverErr)
				assert.True(t, d.err != nil || d.idErr != nil, "client must fail too")
			}
			if tt.clientErr != "" {
				require.Error(t, d.err)
				assert.Contains(t, d.err.Error(), tt.clientErr)
				assert.Contains(t, d.err.Error(), "spiffetls: unable to dial")
				assert.Error(t, a.err)
			}
		})
	}
}
