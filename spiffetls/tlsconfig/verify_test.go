package tlsconfig_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"

	"github.com/spiffekit/spiffekit/internal/testing/testca"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func rawChain(s *x509svid.SVID) [][]byte {
	raw := make([][]byte, len(s.Certificates))
	for i, c := range s.Certificates {
		raw[i] = c.Raw
	}
	return raw
}

func TestVerifyCallbacks(t *testing.T) {
	td := testca.New(t, exampleOrg)
	other := testca.New(t, otherOrg)
	svid := td.NewSVID(t, "/peer")
	errWrapped := errors.New("wrapped")

	tests := []struct {
		name       string
		peer       *x509svid.SVID
		authorizer tlsconfig.Authorizer
		wrapped    func([][]byte, [][]*x509.Certificate) error
		wantErr    string
	}{
		{name: "valid", peer: svid, authorizer: tlsconfig.AuthorizeID(svid.ID)},
		{name: "unauthorized", peer: svid, authorizer: tlsconfig.AuthorizeMemberOf(other.TrustDomain()), wantErr: `tlsconfig: peer "spiffe://example.org/peer" is not authorized: spiffeid: unexpected trust domain`},
		{name: "untrusted", peer: other.NewSVID(t, "/peer"), authorizer: tlsconfig.AuthorizeAny(), wantErr: "x509svid: could not get X509 bundle"},
		{name: "no certificates", peer: &x509svid.SVID{}, authorizer: tlsconfig.AuthorizeAny(), wantErr: "x509svid: empty certificates chain"},
		{name: "nil authorizer", peer: svid, wantErr: "tlsconfig: authorizer is required"},
		{name: "wrapped fails", peer: svid, authorizer: tlsconfig.AuthorizeAny(), wrapped: func([][]byte, [][]*x509.Certificate) error { return errWrapped }, wantErr: "wrapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(t *testing.T, err error) {
				if tt.wantErr == "" {
					require.NoError(t, err)
					return
				}
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
			}
			var wrappedChains [][]*x509.Certificate
			wrapped := func(raw [][]byte, chains [][]*x509.Certificate) error {
				wrappedChains = chains
				if tt.wrapped != nil {
					return tt.wrapped(raw, chains)
				}
				return nil
			}
			t.Run("WrapVerifyPeerCertificate", func(t *testing.T) {
				wrappedChains = nil
				err := tlsconfig.WrapVerifyPeerCertificate(wrapped, td.X509Bundle(), tt.authorizer)(rawChain(tt.peer), nil)
				check(t, err)
				if err == nil {
					assert.NotEmpty(t, wrappedChains)
				}
			})
			if tt.wrapped != nil {
				return
			}
			t.Run("VerifyPeerCertificate", func(t *testing.T) {
				check(t, tlsconfig.VerifyPeerCertificate(td.X509Bundle(), tt.authorizer)(rawChain(tt.peer), nil))
			})
			t.Run("VerifyConnection", func(t *testing.T) {
				check(t, tlsconfig.VerifyConnection(td.X509Bundle(), tt.authorizer)(tls.ConnectionState{PeerCertificates: tt.peer.Certificates}))
			})
		})
	}

	t.Run("unparsable", func(t *testing.T) {
		err := tlsconfig.VerifyPeerCertificate(td.X509Bundle(), tlsconfig.AuthorizeAny())([][]byte{[]byte("junk")}, nil)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "x509svid: unable to parse certificate")
	})
}

// TestVerifyPeerCertificateSkipsResumption shows why the configs authorize
// in VerifyConnection: a config that authorizes in VerifyPeerCertificate
// only, as go-spiffe's do, lets a resumed session through unchecked.
func TestVerifyPeerCertificateSkipsResumption(t *testing.T) {
	td := testca.New(t, exampleOrg)
	var auth counter
	serverConf := &tls.Config{
		MinVersion:            tls.VersionTLS13,
		ClientAuth:            tls.RequireAnyClientCert,
		GetCertificate:        tlsconfig.GetCertificate(td.NewSVID(t, "/server")),
		VerifyPeerCertificate: tlsconfig.VerifyPeerCertificate(td.X509Bundle(), auth.authorize),
	}
	srv := startServer(t, serverConf)
	clientConf := tlsconfig.MTLSClientConfig(td.NewSVID(t, "/client"), td.X509Bundle(), tlsconfig.AuthorizeAny())
	clientConf.ClientSessionCache = tls.NewLRUClientSessionCache(1)

	require.NoError(t, srv.dial(t, clientConf).serverErr)
	auth.reject.Store(true)
	res := srv.dial(t, clientConf)
	require.NoError(t, res.serverErr, "the resumed session is not checked")
	assert.True(t, res.server.DidResume)
	assert.Equal(t, int32(1), auth.calls.Load())
}

func TestAuthorizers(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	id := spiffeid.RequireFromPath(td, "/ns/prod/web")
	tests := []struct {
		name       string
		authorizer tlsconfig.Authorizer
		allowed    bool
	}{
		{"any", tlsconfig.AuthorizeAny(), true},
		{"same ID", tlsconfig.AuthorizeID(id), true},
		{"other ID", tlsconfig.AuthorizeID(spiffeid.RequireFromPath(td, "/ns/prod")), false},
		{"one of", tlsconfig.AuthorizeOneOf(spiffeid.RequireFromPath(td, "/x"), id), true},
		{"none of", tlsconfig.AuthorizeOneOf(spiffeid.RequireFromPath(td, "/x")), false},
		{"empty one of", tlsconfig.AuthorizeOneOf(), false},
		{"member", tlsconfig.AuthorizeMemberOf(td), true},
		{"not member", tlsconfig.AuthorizeMemberOf(spiffeid.RequireTrustDomainFromString("example.com")), false},
		{"prefix on boundary", tlsconfig.AuthorizeIDPrefix(spiffeid.RequireFromPath(td, "/ns/prod")), true},
		{"prefix off boundary", tlsconfig.AuthorizeIDPrefix(spiffeid.RequireFromPath(td, "/ns/pr")), false},
		{"prefix without path", tlsconfig.AuthorizeIDPrefix(spiffeid.RequireFromString("spiffe://example.org")), false},
		{"matcher", tlsconfig.AdaptMatcher(spiffeid.MatchID(id)), true},
		{"nil matcher", tlsconfig.AdaptMatcher(nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.authorizer(id, nil)
			if tt.allowed {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
