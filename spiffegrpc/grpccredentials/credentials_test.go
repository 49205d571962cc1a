package grpccredentials_test

import (
	"context"
	"crypto/x509"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffegrpc/grpccredentials"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

func TestMTLS(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID, clientSVID := td.NewSVID(t, "/server"), td.NewSVID(t, "/client")
	stranger := spiffeid.RequireFromPath(td.TrustDomain(), "/stranger")

	tests := []struct {
		name             string
		serverAuthorizer tlsconfig.Authorizer
		clientAuthorizer tlsconfig.Authorizer
		wantErr          bool
	}{
		{name: "authorized", serverAuthorizer: tlsconfig.AuthorizeID(clientSVID.ID), clientAuthorizer: tlsconfig.AuthorizeID(serverSVID.ID)},
		{name: "server rejects client", serverAuthorizer: tlsconfig.AuthorizeID(stranger), clientAuthorizer: tlsconfig.AuthorizeAny(), wantErr: true},
		{name: "client rejects server", serverAuthorizer: tlsconfig.AuthorizeAny(), clientAuthorizer: tlsconfig.AuthorizeID(stranger), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, peers := startServer(t, grpccredentials.MTLSServerCredentials(serverSVID, td.X509Bundle(), tt.serverAuthorizer))
			p, err := check(t, target, grpccredentials.MTLSClientCredentials(clientSVID, td.X509Bundle(), tt.clientAuthorizer))
			if tt.wantErr {
				require.Error(t, err)
				assert.Equal(t, codes.Unavailable, status.Code(err))
				return
			}
			require.NoError(t, err)
			id, ok := grpccredentials.PeerIDFromPeer(p)
			require.True(t, ok)
			assert.Equal(t, serverSVID.ID, id)
			got := <-peers
			require.True(t, got.ok)
			assert.Equal(t, clientSVID.ID, got.id)

			// The AuthInfo still behaves as gRPC's TLSInfo.
			assert.Equal(t, "tls", p.AuthInfo.AuthType())
			assert.NoError(t, credentials.CheckSecurityLevel(p.AuthInfo, credentials.PrivacyAndIntegrity))
		})
	}
}

func TestTLS(t *testing.T) {
	td := testca.New(t, exampleOrg)
	serverSVID := td.NewSVID(t, "/server")
	target, peers := startServer(t, grpccredentials.TLSServerCredentials(serverSVID))

	p, err := check(t, target, grpccredentials.TLSClientCredentials(td.X509Bundle(), tlsconfig.AuthorizeID(serverSVID.ID)))
	require.NoError(t, err)
	id, ok := grpccredentials.PeerIDFromPeer(p)
	require.True(t, ok)
	assert.Equal(t, serverSVID.ID, id)
	got := <-peers
	assert.False(t, got.ok, "a TLS-only client has no SPIFFE ID")

	_, err = check(t, target, grpccredentials.TLSClientCredentials(td.X509Bundle(), tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString("other.org"))))
	require.Error(t, err)
}

func TestMTLSWeb(t *testing.T) {
	td := testca.New(t, exampleOrg)
	web := testca.New(t, webExample)
	webCert, err := tlsconfig.GetCertificate(web.NewSVID(t, "/www", "localhost"))(nil)
	require.NoError(t, err)
	clientSVID := td.NewSVID(t, "/client")
	roots := x509.NewCertPool()
	roots.AddCert(web.Root())

	target, peers := startServer(t, grpccredentials.MTLSWebServerCredentials(webCert, td.X509Bundle(), tlsconfig.AuthorizeID(clientSVID.ID)))
	p, err := check(t, target, grpccredentials.MTLSWebClientCredentials(clientSVID, roots), grpc.WithAuthority("localhost"))
	require.NoError(t, err)
	_, ok := grpccredentials.PeerIDFromPeer(p)
	assert.False(t, ok, "a web server has no SPIFFE ID")
	got := <-peers
	require.True(t, got.ok)
	assert.Equal(t, clientSVID.ID, got.id)

	// Host name verification applies to web servers.
	_, err = check(t, target, grpccredentials.MTLSWebClientCredentials(clientSVID, roots), grpc.WithAuthority("example.com"))
	require.Error(t, err)
}

func TestPeerIDFromPeer(t *testing.T) {
	spiffeURL, err := url.Parse("spiffe://example.org/w")
	require.NoError(t, err)
	tests := []struct {
		name string
		peer *peer.Peer
	}{
		{"nil peer", nil},
		{"no auth info", &peer.Peer{}},
		// A SPIFFE ID that other credentials accepted is not trusted.
		{"foreign TLS info", &peer.Peer{AuthInfo: credentials.TLSInfo{SPIFFEID: spiffeURL}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := grpccredentials.PeerIDFromPeer(tt.peer)
			assert.False(t, ok)
			assert.True(t, id.IsZero())
		})
	}
	_, ok := grpccredentials.PeerIDFromContext(context.Background())
	assert.False(t, ok)
}

func TestCredentialsMethods(t *testing.T) {
	td := testca.New(t, exampleOrg)
	creds := grpccredentials.MTLSClientCredentials(td.NewSVID(t, "/client"), td.X509Bundle(), tlsconfig.AuthorizeAny())
	assert.Equal(t, "tls", creds.Info().SecurityProtocol)
	clone := creds.Clone()
	require.NoError(t, clone.OverrideServerName("example.org")) //nolint:staticcheck // exercising the forwarder
	assert.Equal(t, "example.org", clone.Info().ServerName)     //nolint:staticcheck // set by OverrideServerName
	assert.Empty(t, creds.Info().ServerName)                    //nolint:staticcheck // the original is unchanged

	// The clone still records peer IDs.
	serverSVID := td.NewSVID(t, "/server")
	target, _ := startServer(t, grpccredentials.MTLSServerCredentials(serverSVID, td.X509Bundle(), tlsconfig.AuthorizeAny()))
	p, err := check(t, target, creds.Clone())
	require.NoError(t, err)
	id, ok := grpccredentials.PeerIDFromPeer(p)
	require.True(t, ok)
	assert.Equal(t, serverSVID.ID, id)
}
