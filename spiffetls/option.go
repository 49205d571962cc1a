package spiffetls

import (
	"crypto/tls"
	"net"

	"github.com/spiffekit/spiffekit/spiffetls/tlsconfig"
)

// DialOption is an option for [Dial] and [DialWithMode]. Options are applied
// in order; the last one wins.
type DialOption interface {
	applyDial(*dialConfig)
}

type dialConfig struct {
	base       *tls.Config
	dialer     *net.Dialer
	tlsOptions []tlsconfig.Option
}

type dialOption func(*dialConfig)

func (f dialOption) applyDial(c *dialConfig) { f(c) }

// ListenOption is an option for [Listen], [ListenWithMode], [NewListener]
// and [NewListenerWithMode]. Options are applied in order; the last one
// wins.
type ListenOption interface {
	applyListen(*listenConfig)
}

type listenConfig struct {
	base       *tls.Config
	tlsOptions []tlsconfig.Option
}

type listenOption func(*listenConfig)

func (f listenOption) applyListen(c *listenConfig) { f(c) }

// WithDialTLSConfigBase sets a base TLS configuration for dialing. Each dial
// uses a Clone of base, so base itself is never changed and may be reused;
// the fields related to certificates and verification are overwritten as
// the Hook functions of package tlsconfig describe. The default is an empty
// config with MinVersion TLS 1.2.
func WithDialTLSConfigBase(base *tls.Config) DialOption {
	return dialOption(func(c *dialConfig) { c.base = base })
}

// WithDialTLSOptions sets the tlsconfig options for the dialing TLS
// configuration, for example tlsconfig.WithTrace.
func WithDialTLSOptions(opts ...tlsconfig.Option) DialOption {
	return dialOption(func(c *dialConfig) { c.tlsOptions = opts })
}

// WithDialer sets the dialer for the underlying connection (timeouts,
// keep-alives, local address). Nil, the default, means a zero net.Dialer.
// The context given to Dial bounds the dial and the TLS handshake in any
// case.
func WithDialer(dialer *net.Dialer) DialOption {
	return dialOption(func(c *dialConfig) { c.dialer = dialer })
}

// WithListenTLSConfigBase sets a base TLS configuration for a listener. The
// listener uses a Clone of base, so base itself is never changed and may be
// reused; the fields related to certificates and verification are
// overwritten as the Hook functions of package tlsconfig describe. The
// default is an empty config with MinVersion TLS 1.2.
func WithListenTLSConfigBase(base *tls.Config) ListenOption {
	return listenOption(func(c *listenConfig) { c.base = base })
}

// WithListenTLSOptions sets the tlsconfig options for the listener's TLS
// configuration, for example tlsconfig.WithTrace.
func WithListenTLSOptions(opts ...tlsconfig.Option) ListenOption {
	return listenOption(func(c *listenConfig) { c.tlsOptions = opts })
}

// configFrom returns a config of its own, based on base if set.
func configFrom(base *tls.Config) *tls.Config {
	if base == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return base.Clone()
}
