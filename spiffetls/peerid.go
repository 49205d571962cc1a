package spiffetls

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// PeerIDGetter is implemented by the connections that [Dial], [DialWithMode]
// and the listeners of this package return. PeerID completes the handshake if
// needed and returns the peer's SPIFFE ID, verified and authorized during the
// handshake.
type PeerIDGetter interface {
	PeerID() (spiffeid.ID, error)
}

// PeerIDFromConn returns the SPIFFE ID of the peer of conn, which must come
// from this package (implement [PeerIDGetter]). It may complete the handshake,
// reading from and writing to conn: set deadlines accordingly.
func PeerIDFromConn(conn net.Conn) (spiffeid.ID, error) {
	if getter, ok := conn.(PeerIDGetter); ok {
		return getter.PeerID()
	}
	return spiffeid.ID{}, errors.New("spiffetls: connection does not expose peer ID")
}

// PeerIDFromConnectionState returns the SPIFFE ID in the leaf certificate of
// state's peer. It does not verify anything: the ID is only as trustworthy as
// the config that completed the handshake (those of package tlsconfig verify
// and authorize it). The handshake must be complete: a *tls.Conn runs it at
// its first Read or Write, so call Handshake first if needed.
func PeerIDFromConnectionState(state tls.ConnectionState) (spiffeid.ID, error) {
	if len(state.PeerCertificates) == 0 {
		return spiffeid.ID{}, errors.New("spiffetls: no peer certificates")
	}
	id, err := x509svid.IDFromCert(state.PeerCertificates[0])
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("spiffetls: invalid peer certificate: %w", err)
	}
	return id, nil
}
