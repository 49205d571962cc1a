package server

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"

	"github.com/spiffekit/spiffekit/exchange"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/server/internal/httpsendpoint"
)

// ExchangePath is the path of the token exchange endpoint on its listener.
const ExchangePath = "/token"

// TokenExchange configures the server's OAuth 2.0 token exchange endpoint
// (RFC 8693, package exchange): a job that runs no agent trades an identity
// token of a trusted issuer for an SVID of an entry parented by
// exchange.ParentID. It is served over HTTPS at [ExchangePath] on a
// listener of its own.
type TokenExchange struct {
	// Bind is the address of the endpoint's listener. Required; port 0
	// picks a free port (see Server.ExchangeAddr).
	Bind string

	// Certificate returns the endpoint's TLS certificate, as
	// tls.Config.GetCertificate does: called in every handshake, so cheap
	// and safe for concurrent use. Nil presents the server's own X509-SVID
	// (spiffe://<trust domain>/spiffekit/server), which callers
	// authenticate with the trust domain's bundle.
	Certificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)

	// Endpoint configures the endpoint: Issuers is required unless
	// Config.Launcher is set; the server sets TrustDomain, Entries (its
	// registry index), Minter (its CA, with the SVID lifetimes of Config),
	// Handles (the launcher's redemptions, with Config.Launcher), and
	// Logger and Now, when not set.
	Endpoint exchange.Config
}

// checkExchangeConfig checks what of the token exchange settings needs
// nothing opened.
func checkExchangeConfig(cfg *Config) error {
	te := cfg.TokenExchange
	if te == nil {
		return nil
	}
	if te.Bind == "" {
		return invalidf("the token exchange endpoint needs a Bind address")
	}
	if err := checkAddr("the token exchange endpoint address", te.Bind); err != nil {
		return err
	}
	if sameListener(cfg.BindAddr, te.Bind) {
		return invalidf("the node API and the token exchange endpoint both listen on %s", te.Bind)
	}
	if cfg.FederationBind != "" && sameListener(cfg.FederationBind, te.Bind) {
		return invalidf("the bundle endpoint and the token exchange endpoint both listen on %s", te.Bind)
	}
	if len(te.Endpoint.Issuers) == 0 && cfg.Launcher == nil {
		return invalidf("the token exchange endpoint needs at least one issuer, or the launcher API")
	}
	ec := te.Endpoint
	if cfg.Launcher != nil {
		// The launch server, made by New, redeems the handles: any
		// non-nil redeemer stands for it here.
		ec.Handles = (*launch.Server)(nil)
	}
	if err := ec.CheckSettings(); err != nil {
		return fmt.Errorf("%w: token exchange: %w", ErrInvalidConfig, err)
	}
	return nil
}

// newExchangeEndpoint makes the token exchange handler and binds its
// listener.
func (s *Server) newExchangeEndpoint() (*httpsendpoint.Endpoint, error) {
	te := s.cfg.TokenExchange
	ec := te.Endpoint
	ec.TrustDomain = s.cfg.TrustDomain
	ec.Entries = s.node.Index()
	ec.Minter = s.minter()
	if s.launcher != nil {
		ec.Handles = s.launcher
	}
	if ec.Logger == nil {
		ec.Logger = s.log.With("component", "token_exchange")
	}
	if ec.Now == nil {
		ec.Now = s.cfg.Now
	}
	h, err := exchange.New(ec)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	getCert := te.Certificate
	if getCert == nil {
		getCert = s.node.TLSConfig().GetCertificate
	}
	mux := http.NewServeMux()
	mux.Handle(ExchangePath, h)
	return httpsendpoint.Listen(te.Bind, "token exchange endpoint", mux, getCert, s.log.With("component", "token_exchange"))
}

// ExchangeAddr returns the address of the token exchange endpoint, or nil
// when Config.TokenExchange is nil.
func (s *Server) ExchangeAddr() net.Addr {
	if s.exchange == nil {
		return nil
	}
	return s.exchange.Addr()
}
