package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/server/internal/datadir"
	"github.com/spiffekit/spiffekit/server/internal/fedpoll"
	"github.com/spiffekit/spiffekit/server/internal/httpsendpoint"
	"github.com/spiffekit/spiffekit/server/internal/mint"
	"github.com/spiffekit/spiffekit/server/internal/prune"
	"github.com/spiffekit/spiffekit/server/internal/storerun"
	"github.com/spiffekit/spiffekit/server/internal/trust"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Server is an issuing server: a self-rotating CA, a registry, the node
// API its agents attest to and sync from, and an administration socket.
// Several servers whose Stores share one database serve one trust domain,
// each with its own CA; the bundle they hand out holds every server's
// authorities.
type Server struct {
	cfg      Config
	log      *slog.Logger
	stores   Stores
	ca       *rotation.Manager
	trust    *trust.View
	node     *nodeserver.Server
	admin    *adminserver.Server
	nodeLis  net.Listener
	adminLis net.Listener
	serverID string
	endpoint *httpsendpoint.Endpoint
	exchange *httpsendpoint.Endpoint
	// launcher, when not nil, serves the launcher API on launcherLis and
	// redeems launch handles at the token exchange endpoint.
	launcher    *launch.Server
	launcherLis net.Listener
	fed         *fedpoll.Poller

	closeOnce sync.Once
}

// New checks cfg, starts the CA from its journal, reads the stores and
// binds the listeners, so that configuration errors (wrapping
// ErrInvalidConfig) and busy ports surface here. It starts no goroutine;
// Run serves. ctx bounds construction only.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := checkConfig(&cfg); err != nil {
		if cfg.DataDirLock != nil {
			cfg.DataDirLock.Close() // the Server owns it from New
		}
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stores: cfg.Stores, serverID: cfg.ServerID}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.serverID == "" {
		if s.serverID, err = datadir.NewServerID(); err != nil {
			return nil, err
		}
	}
	attestors, err := s.nodeAttestors()
	if err != nil {
		return nil, err
	}
	if s.ca, err = rotation.New(ctx, rotation.Config{
		TrustDomain: cfg.TrustDomain,
		KeyManager:  cfg.KeyManager,
		Upstream:    cfg.Upstream,
		Journal:     cfg.Journal,
		CATTL:       cfg.CATTL,
		X509SVIDTTL: cfg.X509SVIDTTL,
		JWTSVIDTTL:  cfg.JWTSVIDTTL,
		WITKeys:     cfg.WITSVIDs,
		WITSVIDTTL:  cfg.WITSVIDTTL,
		Now:         s.cfg.Now,
		Logger:      s.log.With("component", "ca"),
	}); err != nil {
		return nil, fmt.Errorf("server: starting the CA: %w", err)
	}
	s.trust = trust.New(s.ca, trust.Stores{Shares: cfg.Stores.ServerBundles, Bundles: cfg.Stores.Bundles}, s.serverID, s.log, s.cfg.Now)
	if err := s.trust.Refresh(ctx); err != nil {
		return nil, err
	}
	if s.node, err = nodeserver.New(ctx, nodeserver.Config{
		Authority:     s.trust,
		Registry:      cfg.Stores.Entries,
		Agents:        cfg.Stores.Agents,
		Attestors:     attestors,
		Federation:    s.trust,
		Downstream:    s.trust,
		AgentSVIDTTL:  cfg.AgentSVIDTTL,
		X509SVIDTTL:   cfg.X509SVIDTTL,
		JWTSVIDTTL:    cfg.JWTSVIDTTL,
		WITSVIDTTL:    cfg.WITSVIDTTL,
		JWTSVIDJTI:    cfg.JWTSVIDJTI,
		JWTIssuer:     cfg.JWTIssuer,
		PollInterval:  cfg.PollInterval,
		MaxHandshakes: cfg.MaxHandshakes,
		HandshakeWait: cfg.HandshakeWait,
		Now:           s.cfg.Now,
		Logger:        s.log.With("component", "nodeapi"),
		Observer:      cfg.NodeObserver,
	}); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.setUpFederation(ctx); err != nil {
		return nil, err
	}
	if s.nodeLis, err = net.Listen("tcp", cfg.BindAddr); err != nil {
		return nil, fmt.Errorf("server: node API: %w", err)
	}
	if cfg.FederationBind != "" {
		if s.endpoint, err = s.newBundleEndpoint(); err != nil {
			return nil, err
		}
	}
	if cfg.Launcher != nil {
		if err := s.setUpLauncher(); err != nil {
			return nil, err
		}
	}
	if cfg.TokenExchange != nil {
		if s.exchange, err = s.newExchangeEndpoint(); err != nil {
			return nil, err
		}
	}
	if cfg.AdminSocket != "" {
		if err := s.setUpAdmin(); err != nil {
			return nil, err
		}
	}
	maxHandshakes, handshakeWait := s.node.HandshakeAdmission()
	s.log.Info("server ready", "trust_domain", cfg.TrustDomain.Name(), "server_id", s.serverID,
		"node_api", s.nodeLis.Addr().String(), "max_handshakes", maxHandshakes, "handshake_wait", handshakeWait,
		"admin_socket", cfg.AdminSocket,
		"node_attestors", strings.Join(slices.Sorted(maps.Keys(s.cfg.NodeAttestors)), ","))
	if s.endpoint != nil {
		s.log.Info("serving the bundle endpoint", "addr", s.endpoint.Addr().String(), "profile", cfg.FederationProfile)
	}
	if s.exchange != nil {
		s.log.Info("serving the token exchange endpoint", "addr", s.exchange.Addr().String(), "path", ExchangePath,
			"issuers", len(cfg.TokenExchange.Endpoint.Issuers), "launch_handles", s.launcher != nil)
	}
	if s.launcher != nil {
		s.log.Info("serving the launcher API", "socket", cfg.Launcher.SocketPath)
	}
	return s, nil
}

// nodeAttestors returns the node attestors of the configuration, sorted by
// type, or join_token over the token store when it names none.
func (s *Server) nodeAttestors() ([]attest.NodeAttestor, error) {
	if len(s.cfg.NodeAttestors) == 0 {
		jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: s.stores.Tokens, Now: s.cfg.Now})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		s.cfg.NodeAttestors = map[string]attest.NodeAttestor{jointoken.Type: jt}
	} else {
		s.cfg.NodeAttestors = maps.Clone(s.cfg.NodeAttestors)
	}
	out := make([]attest.NodeAttestor, 0, len(s.cfg.NodeAttestors))
	for _, name := range slices.Sorted(maps.Keys(s.cfg.NodeAttestors)) {
		out = append(out, s.cfg.NodeAttestors[name])
	}
	return out, nil
}

// setUpAdmin binds the administration socket.
func (s *Server) setUpAdmin() (err error) {
	// The stores tell the node API and the trust of the admin API's
	// writes; a store that does not is read at the next poll.
	st := s.stores
	if s.admin, err = adminserver.New(adminserver.Config{
		TrustDomain: s.cfg.TrustDomain,
		Entries:     st.Entries,
		Agents:      st.Agents,
		Bundles:     st.Bundles,
		Tokens:      mint.JoinTokens{Store: st.Tokens, Entries: st.Entries, ServerID: spiffeid.RequireFromPath(s.cfg.TrustDomain, nodeapi.ServerPath), Now: s.cfg.Now},
		Bundle:      s.trust.Bundle,
		Authorities: s.trust.AuthorityManager(),
		Minter:      s.minter(),
		Federation:  s.fed.Admin(),
		Health:      s.Healthy,
		Logger:      s.log.With("component", "admin"),
		Now:         s.cfg.Now,
	}); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.AdminSocket), 0o755); err != nil {
		return fmt.Errorf("server: admin socket directory: %w", err)
	}
	if s.adminLis, err = adminserver.ListenUnix(s.cfg.AdminSocket); err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return nil
}

// minter signs the SVIDs of the admin API and the token exchange with the
// server's active authorities.
func (s *Server) minter() mint.SVIDs {
	return mint.SVIDs{Authority: s.trust, X509SVIDTTL: s.cfg.X509SVIDTTL, JWTSVIDTTL: s.cfg.JWTSVIDTTL,
		JWTSVIDJTI: s.cfg.JWTSVIDJTI, JWTIssuer: s.cfg.JWTIssuer}
}

// setUpFederation validates the relationships of the configuration and
// prepares the poller of every relationship's bundle endpoint.
func (s *Server) setUpFederation(ctx context.Context) error {
	rels, err := validateRelationships(s.cfg.TrustDomain, s.cfg.Federation, fedpoll.Stored(ctx, s.stores.Bundles))
	if err != nil {
		return err
	}
	s.fed, err = fedpoll.New(ctx, fedpoll.Config{
		TrustDomain:  s.cfg.TrustDomain,
		Static:       rels,
		Store:        s.stores.Federation,
		Bundles:      s.stores.Bundles,
		Source:       s.trust,
		WebPKIRoots:  s.cfg.FederationWebPKIRoots,
		Refresh:      s.cfg.FederationRefresh,
		Timeout:      s.cfg.FederationTimeout,
		PollInterval: s.cfg.PollInterval,
		Concurrency:  s.cfg.FederationConcurrency,
		Logger:       s.log,
	})
	return err
}

// Addr returns the address the node API listens on.
func (s *Server) Addr() net.Addr { return s.nodeLis.Addr() }

// ID returns the server's ID among the servers of its trust domain
// (Config.ServerID, or the random one New made).
func (s *Server) ID() string { return s.serverID }

// TrustDomain returns the server's trust domain.
func (s *Server) TrustDomain() spiffeid.TrustDomain { return s.cfg.TrustDomain }

// CA returns the server's rotating CA, for operator actions.
func (s *Server) CA() *rotation.Manager { return s.ca }

// Node returns the node API server.
func (s *Server) Node() *nodeserver.Server { return s.node }

// FederationAddr returns the address the bundle endpoint listens on, or
// nil when Config.FederationBind is empty.
func (s *Server) FederationAddr() net.Addr {
	if s.endpoint == nil {
		return nil
	}
	return s.endpoint.Addr()
}

// Bundle returns the trust domain's bundle as the server hands it out.
func (s *Server) Bundle() *spiffebundle.Bundle { return s.trust.Bundle() }

// Run serves the node API, the admin socket and the bundle endpoint, runs
// the stores that have a Run method (see Stores; on PostgreSQL, the
// listener that tells of every server's writes), follows the stores'
// notifications to push registry, agent record and CA changes to agents,
// deletes expired entries (Config.EntryPruneInterval), rotates the CA, keeps the shared bundle fresh and polls the bundle
// endpoints of the federation relationships, until ctx is done; it then
// shuts down gracefully and returns nil. If one of these fails (a
// listener, the CA's rotation, a store), the others stop and Run returns
// every failure.
func (s *Server) Run(ctx context.Context) error {
	var parts []func(context.Context) error
	stores := s.stores
	for _, st := range storerun.Distinct(stores.Entries, stores.Agents, stores.Tokens, stores.Bundles, stores.ServerBundles, stores.Federation) {
		parts = append(parts, st.Run)
	}
	parts = append(parts, func(ctx context.Context) error { return s.node.Serve(ctx, s.nodeLis) }, s.node.Run)
	if s.admin != nil {
		parts = append(parts, func(ctx context.Context) error { return s.admin.Serve(ctx, s.adminLis) })
	}
	if s.endpoint != nil {
		parts = append(parts, s.endpoint.Serve)
	}
	if s.exchange != nil {
		parts = append(parts, s.exchange.Serve)
	}
	if s.launcher != nil {
		parts = append(parts, func(ctx context.Context) error { return s.launcher.Serve(ctx, s.launcherLis) })
	}
	parts = append(parts, func(ctx context.Context) error { s.fed.Run(ctx); return nil })
	parts = append(parts, s.ca.Run, func(ctx context.Context) error { s.trust.Run(ctx, s.cfg.PollInterval); return nil },
		func(ctx context.Context) error { s.pruner().Run(ctx); return nil },
		func(ctx context.Context) error {
			prune.Tokens{Store: s.stores.Tokens, Now: s.cfg.Now, Logger: s.log}.Run(ctx)
			return nil
		})
	if up, ok := s.cfg.Upstream.(ca.UpstreamJWTPublisher); ok {
		parts = append(parts, func(ctx context.Context) error { s.trust.PublishUpstream(ctx, up); return nil })
	}
	// The ctx.Err() a part returns once stopped is no failure.
	return lifecycle.RunAll(ctx, parts...)
}

// Healthy returns nil when the server can issue: its CA has an active
// X.509 authority and the entry store answers.
func (s *Server) Healthy(ctx context.Context) error {
	if s.ca.X509Authority() == nil {
		return errors.New("server: no active X.509 CA")
	}
	if _, err := s.stores.Entries.Head(ctx); err != nil {
		return fmt.Errorf("server: datastore: %w", err)
	}
	return nil
}

// Close releases what New opened: the listeners and the node API, and the
// lock of Config.DataDirLock, last. It leaves the stores, the key manager
// and the journal of Config open: they are the caller's. Run must have
// returned.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		if s.node != nil {
			errs = append(errs, s.node.Close())
		}
		for _, l := range []net.Listener{s.nodeLis, s.adminLis, s.launcherLis} {
			if l != nil {
				l.Close()
			}
		}
		for _, e := range []*httpsendpoint.Endpoint{s.endpoint, s.exchange} {
			if e != nil {
				e.Close()
			}
		}
		if s.cfg.DataDirLock != nil {
			errs = append(errs, s.cfg.DataDirLock.Close())
		}
	})
	return errors.Join(errs...)
}
