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

// Listen creates an mTLS listener on laddr: the server's X509-SVID and the
// X.509 bundles that verify client X509-SVIDs come from a new Workload API
// X.509 source, closed with the listener, and authorizer authorizes
// clients. It is ListenWithMode with [MTLSServer].
func Listen(ctx context.Context, network, laddr string, authorizer tlsconfig.Authorizer, options ...ListenOption) (net.Listener, error) {
	return ListenWithMode(ctx, network, laddr, MTLSServer(authorizer), options...)
}

// NewListener creates an mTLS listener that accepts connections from inner,
// as [Listen] does. It is NewListenerWithMode with [MTLSServer].
func NewListener(ctx context.Context, inner net.Listener, authorizer tlsconfig.Authorizer, options ...ListenOption) (net.Listener, error) {
	return NewListenerWithMode(ctx, inner, MTLSServer(authorizer), options...)
}

// ListenWithMode listens on laddr with net.ListenConfig and wraps the
// listener as [NewListenerWithMode] does. ctx bounds listening and the
// creation of a Workload API source only. On error nothing is left open.
func ListenWithMode(ctx context.Context, network, laddr string, mode ListenMode, options ...ListenOption) (net.Listener, error) {
	var lc net.ListenConfig
	inner, err := lc.Listen(ctx, network, laddr)
	if err != nil {
		return nil, fmt.Errorf("spiffetls: unable to listen: %w", err)
	}
	l, err := NewListenerWithMode(ctx, inner, mode, options...)
	if err != nil {
		inner.Close()
		return nil, err
	}
	return l, nil
}

// NewListenerWithMode returns a listener that accepts connections from inner
// and serves TLS on them as mode says. ctx bounds the creation of a Workload
// API source only (for modes that create one). inner is owned by the
// returned listener once NewListenerWithMode succeeds; on error the caller
// still owns it.
//
// Accepted connections are *tls.Conn wrappers that implement [PeerIDGetter];
// the handshake runs on their first Read, Write or PeerID call. Closing the
// listener closes inner and the Workload API source the mode created, if
// any; it is idempotent. A base config given with [WithListenTLSConfigBase]
// is cloned, never changed.
func NewListenerWithMode(ctx context.Context, inner net.Listener, mode ListenMode, options ...ListenOption) (_ net.Listener, err error) {
	switch {
	case inner == nil:
		return nil, errors.New("spiffetls: inner listener is required")
	case mode == nil:
		return nil, errors.New("spiffetls: listen mode is required")
	}
	m := mode.listenMode()
	var cfg listenConfig
	for _, o := range options {
		if o != nil {
			o.applyListen(&cfg)
		}
	}

	svid, bundle, owned, err := m.open(ctx)
	if err != nil {
		return nil, err
	}

	config := configFrom(cfg.base)
	switch m.kind {
	case tlsServer:
		tlsconfig.HookTLSServerConfig(config, svid, cfg.tlsOptions...)
	case mtlsServer:
		tlsconfig.HookMTLSServerConfig(config, svid, bundle, m.authorizer, cfg.tlsOptions...)
	case mtlsWebServer:
		tlsconfig.HookMTLSWebServerConfig(config, m.cert, bundle, m.authorizer, cfg.tlsOptions...)
	}
	return &listener{
		inner:     inner,
		config:    config,
		owned:     owned,
		peerHasID: m.kind != tlsServer,
	}, nil
}

// listener serves TLS on the connections of inner and owns the Workload API
// source its mode created, if any.
type listener struct {
	inner     net.Listener
	config    *tls.Config
	owned     io.Closer
	peerHasID bool

	closeOnce sync.Once
	closeErr  error
}

// Accept waits for the next connection and returns it wrapped in TLS.
func (l *listener) Accept() (net.Conn, error) {
	conn, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: tls.Server(conn, l.config), peerHasID: l.peerHasID}, nil
}

// Addr returns the address of inner.
func (l *listener) Addr() net.Addr {
	return l.inner.Addr()
}

// Close closes inner and the source the listener owns. It is idempotent.
func (l *listener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = closeBoth(l.inner, l.owned, "listener") })
	return l.closeErr
}

// serverConn is a connection accepted by a listener of this package.
type serverConn struct {
	*tls.Conn
	peerHasID bool
}

// PeerID returns the client's SPIFFE ID, completing the handshake first if
// needed. In the TLSServer modes clients are not authenticated and PeerID
// returns an error.
func (c *serverConn) PeerID() (spiffeid.ID, error) {
	return peerID(c.Conn, c.peerHasID)
}
