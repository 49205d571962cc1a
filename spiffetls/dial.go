package spiffetls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// Dial creates an mTLS connection: the client's X509-SVID and the X.509
// bundles that verify the server's X509-SVID come from a new Workload API
// X.509 source, closed with the connection, and authorizer authorizes the
// server. It is DialWithMode with [MTLSClient].
func Dial(ctx context.Context, network, addr string, authorizer tlsconfig.Authorizer, options ...DialOption) (net.Conn, error) {
	return DialWithMode(ctx, network, addr, MTLSClient(authorizer), options...)
}

// DialWithMode connects to addr on network and completes a TLS handshake as
// mode says. ctx bounds the creation of a Workload API source (for modes
// that create one), the dial and the handshake, unlike go-spiffe, whose dial
// ignores it; once DialWithMode returns, ctx no longer matters.
//
// The returned connection is a *tls.Conn wrapper that implements
// [PeerIDGetter]. Closing it closes the Workload API source the mode created,
// if any. A base config given with [WithDialTLSConfigBase] is cloned, never
// changed.
func DialWithMode(ctx context.Context, network, addr string, mode DialMode, options ...DialOption) (_ net.Conn, err error) {
	if mode == nil {
		return nil, errors.New("spiffetls: dial mode is required")
	}
	m := mode.dialMode()
	var cfg dialConfig
	for _, o := range options {
		if o != nil {
			o.applyDial(&cfg)
		}
	}

	svid, bundle, owned, err := m.open(ctx)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && owned != nil {
			owned.Close()
		}
	}()

	config := configFrom(cfg.base)
	switch m.kind {
	case tlsClient:
		tlsconfig.HookTLSClientConfig(config, bundle, m.authorizer, cfg.tlsOptions...)
	case mtlsClient:
		tlsconfig.HookMTLSClientConfig(config, svid, bundle, m.authorizer, cfg.tlsOptions...)
	case mtlsWebClient:
		tlsconfig.HookMTLSWebClientConfig(config, svid, m.roots, cfg.tlsOptions...)
	}

	dialer := &tls.Dialer{NetDialer: cfg.dialer, Config: config}
	conn, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("spiffetls: unable to dial: %w", err)
	}
	return &clientConn{
		Conn:      conn.(*tls.Conn),
		owned:     owned,
		peerHasID: m.kind != mtlsWebClient,
	}, nil
}

// clientConn is a client connection that owns the Workload API source its
// mode created, if any.
type clientConn struct {
	*tls.Conn
	owned     io.Closer
	peerHasID bool

	closeOnce sync.Once
	closeErr  error
}

// Close closes the connection and the source it owns. It is idempotent.
func (c *clientConn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = closeBoth(c.Conn, c.owned, "connection") })
	return c.closeErr
}

// PeerID returns the server's SPIFFE ID, completing the handshake first if
// needed. In the MTLSWebClient modes the server is authenticated as a web
// server, not by SPIFFE ID, and PeerID returns an error even if its
// certificate carries a URI SAN.
func (c *clientConn) PeerID() (spiffeid.ID, error) {
	return peerID(c.Conn, c.peerHasID)
}

func peerID(conn *tls.Conn, peerHasID bool) (spiffeid.ID, error) {
	if err := conn.Handshake(); err != nil {
		return spiffeid.ID{}, fmt.Errorf("spiffetls: unable to complete TLS handshake: %w", err)
	}
	if !peerHasID {
		return spiffeid.ID{}, errors.New("spiffetls: peer is not authenticated by SPIFFE ID")
	}
	return PeerIDFromConnectionState(conn.ConnectionState())
}

// closeBoth closes c and then owned (if any), joining their errors.
func closeBoth(c io.Closer, owned io.Closer, what string) error {
	var errs []error
	if err := c.Close(); err != nil {
		errs = append(errs, fmt.Errorf("spiffetls: unable to close %s: %w", what, err))
	}
	if owned != nil {
		if err := owned.Close(); err != nil {
			errs = append(errs, fmt.Errorf("spiffetls: unable to close X.509 source: %w", err))
		}
	}
	return errors.Join(errs...)
}
