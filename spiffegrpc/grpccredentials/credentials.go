package grpccredentials

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// TLSClientCredentials returns gRPC client transport credentials that verify
// the server's X509-SVID against bundle and authorize it with authorizer (see
// tlsconfig.TLSClientConfig). The client presents no certificate. The
// server's SPIFFE ID is available through [PeerIDFromPeer].
func TLSClientCredentials(bundle x509bundle.Source, authorizer tlsconfig.Authorizer, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.TLSClientConfig(bundle, authorizer, opts...), true)
}

// MTLSClientCredentials returns gRPC client transport credentials that
// present the current X509-SVID of svid and verify and authorize the
// server's X509-SVID (see tlsconfig.MTLSClientConfig). The server's SPIFFE ID
// is available through [PeerIDFromPeer].
func MTLSClientCredentials(svid x509svid.Source, bundle x509bundle.Source, authorizer tlsconfig.Authorizer, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.MTLSClientConfig(svid, bundle, authorizer, opts...), true)
}

// MTLSWebClientCredentials returns gRPC client transport credentials that
// present the current X509-SVID of svid and verify the server's web
// certificate against roots (the system roots if nil) and the server name
// (see tlsconfig.MTLSWebClientConfig). A web server has no SPIFFE ID, so
// [PeerIDFromPeer] reports none.
func MTLSWebClientCredentials(svid x509svid.Source, roots *x509.CertPool, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.MTLSWebClientConfig(svid, roots, opts...), false)
}

// TLSServerCredentials returns gRPC server transport credentials that
// present the current X509-SVID of svid and do not ask for client
// certificates (see tlsconfig.TLSServerConfig). Clients have no SPIFFE ID.
func TLSServerCredentials(svid x509svid.Source, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.TLSServerConfig(svid, opts...), false)
}

// MTLSServerCredentials returns gRPC server transport credentials that
// present the current X509-SVID of svid and require, verify and authorize a
// client X509-SVID (see tlsconfig.MTLSServerConfig). Handlers read the
// client's SPIFFE ID with [PeerIDFromContext].
func MTLSServerCredentials(svid x509svid.Source, bundle x509bundle.Source, authorizer tlsconfig.Authorizer, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.MTLSServerConfig(svid, bundle, authorizer, opts...), true)
}

// MTLSWebServerCredentials returns gRPC server transport credentials that
// present the web certificate cert and require, verify and authorize a
// client X509-SVID (see tlsconfig.MTLSWebServerConfig). Handlers read the
// client's SPIFFE ID with [PeerIDFromContext].
func MTLSWebServerCredentials(cert *tls.Certificate, bundle x509bundle.Source, authorizer tlsconfig.Authorizer, opts ...tlsconfig.Option) credentials.TransportCredentials {
	return newCredentials(tlsconfig.MTLSWebServerConfig(cert, bundle, authorizer, opts...), true)
}

// PeerIDFromContext returns the SPIFFE ID of the peer of the RPC whose
// context ctx is, as [PeerIDFromPeer] does. It reports false when ctx
// carries no peer.
func PeerIDFromContext(ctx context.Context) (spiffeid.ID, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, false
	}
	return PeerIDFromPeer(p)
}

// PeerIDFromPeer returns the SPIFFE ID of p, verified and authorized during
// the handshake. It reports false when p is nil, when the peer presented no
// X509-SVID (a web server, a client of a TLS-only server), or when the
// connection was not secured by credentials from this package: a SPIFFE ID
// in a certificate that other credentials accepted is not trusted.
func PeerIDFromPeer(p *peer.Peer) (spiffeid.ID, bool) {
	if p == nil {
		return spiffeid.ID{}, false
	}
	info, ok := p.AuthInfo.(authInfo)
	if !ok || info.peerID.IsZero() {
		return spiffeid.ID{}, false
	}
	return info.peerID, true
}

// transportCredentials wraps gRPC's TLS credentials to record the peer's
// SPIFFE ID in the AuthInfo of each connection.
type transportCredentials struct {
	tls credentials.TransportCredentials
	// peerHasID tells whether the peer authenticates with an X509-SVID.
	peerHasID bool
}

func newCredentials(config *tls.Config, peerHasID bool) credentials.TransportCredentials {
	// credentials.NewTLS clones config and adds the "h2" ALPN protocol.
	return transportCredentials{tls: credentials.NewTLS(config), peerHasID: peerHasID}
}

func (c transportCredentials) ClientHandshake(ctx context.Context, authority string, rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.wrap(c.tls.ClientHandshake(ctx, authority, rawConn))
}

func (c transportCredentials) ServerHandshake(rawConn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return c.wrap(c.tls.ServerHandshake(rawConn))
}

func (c transportCredentials) wrap(conn net.Conn, info credentials.AuthInfo, err error) (net.Conn, credentials.AuthInfo, error) {
	if err != nil {
		// gRPC's own handshake errors, and the tlsconfig and x509svid
		// errors inside them, already name their package.
		return nil, nil, err
	}
	tlsInfo, ok := info.(credentials.TLSInfo)
	if !ok {
		conn.Close()
		return nil, nil, fmt.Errorf("grpccredentials: unexpected auth info type %T", info)
	}
	out := authInfo{TLSInfo: tlsInfo}
	if c.peerHasID && len(tlsInfo.State.PeerCertificates) > 0 {
		// The certificate was verified as an X509-SVID during the
		// handshake, so its ID is well formed.
		id, err := x509svid.IDFromCert(tlsInfo.State.PeerCertificates[0])
		if err != nil {
			conn.Close()
			return nil, nil, fmt.Errorf("grpccredentials: invalid peer SPIFFE ID: %w", err)
		}
		out.peerID = id
	}
	return conn, out, nil
}

func (c transportCredentials) Info() credentials.ProtocolInfo {
	return c.tls.Info()
}

func (c transportCredentials) Clone() credentials.TransportCredentials {
	return transportCredentials{tls: c.tls.Clone(), peerHasID: c.peerHasID}
}

// OverrideServerName implements credentials.TransportCredentials. It is
// deprecated in gRPC; use grpc.WithAuthority instead.
func (c transportCredentials) OverrideServerName(name string) error {
	return c.tls.OverrideServerName(name) //nolint:staticcheck // the wrapper must forward it while gRPC has it
}

// authInfo is gRPC's TLSInfo plus the peer's SPIFFE ID. Embedding TLSInfo
// keeps its methods (AuthType, GetCommonAuthInfo, ValidateAuthority,
// GetSecurityValue) on the wrapper, so gRPC's security level and authority
// checks still work.
type authInfo struct {
	credentials.TLSInfo
	peerID spiffeid.ID
}
