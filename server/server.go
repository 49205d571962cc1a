package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/jointoken"
	"github.com/spiffekit/spiffekit/attest/x509pop"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca/keymanager"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/atomicfile"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/sqlstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Defaults of Config.
const (
	DefaultBindAddr     = "127.0.0.1:8081"
	DefaultPollInterval = 30 * time.Second
)

// Config configures New. The struct is copied.
type Config struct {
	// TrustDomain is the trust domain the server issues identities in.
	// Required.
	TrustDomain spiffeid.TrustDomain

	// DataDir holds the server's own state: its CA keys (mode 0600), the
	// CA journal, its server ID and, unless Datastore is set, the SQLite
	// database. Created with mode 0700 if missing. Required.
	DataDir string

	// Datastore, when not empty, is a PostgreSQL connection string (a
	// "postgres://..." URL or "key=value" pairs) for the registry, shared by
	// every server of the trust domain. Empty means SQLite in DataDir.
	Datastore string

	// BindAddr is the address of the node API. Empty means
	// DefaultBindAddr; port 0 picks a free port (see Server.Addr).
	BindAddr string

	// AdminSocket is the path of the administration socket (mode 0600;
	// only root and the server's own uid may use it). Empty disables it.
	AdminSocket string

	// X509PoPCABundle, when not empty, is a PEM file of the CAs that node
	// certificates must chain to, which enables the x509pop node
	// attestor. join_token is always enabled.
	X509PoPCABundle string

	// CATTL, X509SVIDTTL, JWTSVIDTTL and AgentSVIDTTL are lifetimes; zero
	// means the defaults of ca/rotation (24 h CA, 1 h X509-SVID, 5 min
	// JWT-SVID) and nodeapi (1 h agent SVID).
	CATTL, X509SVIDTTL, JWTSVIDTTL, AgentSVIDTTL time.Duration

	// PollInterval is the safety net behind the datastore's notifications.
	// The datastore tells the server of every write at once: on SQLite of
	// the server's own, on PostgreSQL of every server's (through
	// LISTEN/NOTIFY; see sqlstore.Store.Run). The server then reads what
	// changed: the registry's change feed, the agent records (evictions,
	// bans), the other servers' authorities and the federated bundles.
	// Every PollInterval it reads them anyway, in case a notification was
	// lost. Zero means DefaultPollInterval (30 s).
	PollInterval time.Duration

	// FederationBind, when not empty, is the address of the trust domain's
	// bundle endpoint: HTTPS, path "/", no client authentication (Fed rules
	// 9, 10). Port 0 picks a free port (see Server.FederationAddr). Empty
	// serves no bundle endpoint.
	FederationBind string

	// FederationProfile is how the bundle endpoint authenticates:
	// ProfileHTTPSSPIFFE (empty means it) presents the server's own
	// X509-SVID, spiffe://<trust domain>/spiffekit/server, renewed on its
	// own and re-minted when the CA rotates; ProfileHTTPSWeb presents the
	// certificate of FederationCertFile and FederationKeyFile.
	FederationProfile string

	// FederationCertFile and FederationKeyFile are the PEM certificate
	// chain and private key of an https_web bundle endpoint, read again
	// whenever either file changes. Refused with the https_spiffe profile.
	FederationCertFile, FederationKeyFile string

	// Federation lists the foreign trust domains whose bundle endpoints the
	// server polls, storing each bundle in the datastore (see Relationship).
	// Removing a relationship stops the polling but leaves the stored
	// bundle: delete it with the admin API (`bundle delete`) to end the
	// federation (Fed rule 4).
	Federation []Relationship

	// FederationRefresh is the longest time between two polls of a bundle
	// endpoint; a bundle's refresh hint, when shorter, is followed (Fed
	// rule 21). Zero means DefaultFederationRefresh (5 minutes).
	FederationRefresh time.Duration

	// FederationTimeout bounds each fetch from a bundle endpoint. Zero
	// means DefaultFederationTimeout (30 s).
	FederationTimeout time.Duration

	// Logger receives the server's events. Nil discards them.
	Logger *slog.Logger

	// NodeObserver, when not nil, is told of every node API call, node
	// attestation and signing (see nodeapi.Observer). Nil costs nothing.
	// The server's state is read with Stats.
	NodeObserver nodeapi.Observer
}

// Server is an issuing server: a self-rotating CA, a registry (SQLite or
// shared PostgreSQL), the node API its agents attest to and sync from, and
// an administration socket. Several servers sharing one PostgreSQL
// database serve one trust domain, each with its own CA; the bundle they
// hand out holds every server's authorities.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    *sqlstore.Store
	ca       *rotation.Manager
	trust    *trust
	node     *nodeapi.Server
	admin    *admin.Server
	nodeLis  net.Listener
	adminLis net.Listener
	serverID string
	endpoint *bundleEndpoint
	watchers []*fedWatcher

	closeOnce sync.Once
}

// New opens the server's state and binds its listeners, so that
// configuration errors and busy ports surface here. Run serves.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("server: Config.TrustDomain is required")
	case cfg.DataDir == "":
		return nil, errors.New("server: Config.DataDir is required")
	case cfg.PollInterval < 0 || cfg.FederationRefresh < 0 || cfg.FederationTimeout < 0:
		return nil, errors.New("server: intervals must not be negative")
	}
	if err := checkEndpointConfig(&cfg); err != nil {
		return nil, err
	}
	if cfg.BindAddr == "" {
		cfg.BindAddr = DefaultBindAddr
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.FederationRefresh == 0 {
		cfg.FederationRefresh = DefaultFederationRefresh
	}
	if cfg.FederationTimeout == 0 {
		cfg.FederationTimeout = DefaultFederationTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: creating the data directory: %w", err)
	}
	if s.serverID, err = loadServerID(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.Datastore == "" {
		s.store, err = sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.SQLite, DSN: filepath.Join(cfg.DataDir, "datastore.sqlite3")})
	} else {
		s.store, err = sqlstore.Open(ctx, sqlstore.Config{Dialect: sqlstore.PostgreSQL, DSN: cfg.Datastore})
	}
	if err != nil {
		return nil, fmt.Errorf("server: opening the datastore: %w", err)
	}
	keys, err := keymanager.NewDisk(filepath.Join(cfg.DataDir, "keys"))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if s.ca, err = rotation.New(ctx, rotation.Config{
		TrustDomain: cfg.TrustDomain,
		KeyManager:  keys,
		Journal:     rotation.NewFileJournal(filepath.Join(cfg.DataDir, "ca-journal.json")),
		CATTL:       cfg.CATTL,
		X509SVIDTTL: cfg.X509SVIDTTL,
		JWTSVIDTTL:  cfg.JWTSVIDTTL,
		Logger:      s.log.With("component", "ca"),
	}); err != nil {
		return nil, fmt.Errorf("server: starting the CA: %w", err)
	}
	s.trust = newTrust(s.ca, s.store, s.serverID, s.log, time.Now)
	if err := s.trust.refresh(ctx); err != nil {
		return nil, err
	}
	jt, err := jointoken.NewServer(jointoken.ServerConfig{Store: s.store})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	attestors := []attest.NodeAttestor{jt}
	if cfg.X509PoPCABundle != "" {
		xp, err := x509pop.LoadServer(cfg.X509PoPCABundle)
		if err != nil {
			return nil, fmt.Errorf("server: x509pop: %w", err)
		}
		attestors = append(attestors, xp)
	}
	if s.node, err = nodeapi.NewServer(ctx, nodeapi.ServerConfig{
		Authority:    s.trust,
		Registry:     s.store,
		Agents:       s.store,
		Attestors:    attestors,
		Federation:   s.trust,
		AgentSVIDTTL: cfg.AgentSVIDTTL,
		X509SVIDTTL:  cfg.X509SVIDTTL,
		JWTSVIDTTL:   cfg.JWTSVIDTTL,
		PollInterval: cfg.PollInterval,
		Logger:       s.log.With("component", "nodeapi"),
		Observer:     cfg.NodeObserver,
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
	if cfg.AdminSocket != "" {
		if s.admin, err = admin.New(admin.Config{
			TrustDomain: cfg.TrustDomain,
			Entries:     s.store,
			Agents:      s.store,
			Bundles:     s.store,
			Tokens:      tokenIssuer{s.store},
			Bundle:      s.trust.Bundle,
			Logger:      s.log.With("component", "admin"),
		}); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(cfg.AdminSocket), 0o755); err != nil {
			return nil, fmt.Errorf("server: admin socket directory: %w", err)
		}
		if s.adminLis, err = admin.ListenUnix(cfg.AdminSocket); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	s.log.Info("server ready", "trust_domain", cfg.TrustDomain.Name(), "server_id", s.serverID,
		"node_api", s.nodeLis.Addr().String(), "admin_socket", cfg.AdminSocket, "datastore", datastoreKind(cfg))
	if s.endpoint != nil {
		s.log.Info("serving the bundle endpoint", "addr", s.endpoint.lis.Addr().String(), "profile", cfg.FederationProfile)
	}
	return s, nil
}

// checkEndpointConfig checks the bundle endpoint settings and sets the
// default profile.
func checkEndpointConfig(cfg *Config) error {
	files := cfg.FederationCertFile != "" || cfg.FederationKeyFile != ""
	if cfg.FederationBind == "" {
		if files || cfg.FederationProfile != "" {
			return errors.New("server: a bundle endpoint profile or certificate is set but no FederationBind")
		}
		return nil
	}
	switch cfg.FederationProfile {
	case "", ProfileHTTPSSPIFFE:
		cfg.FederationProfile = ProfileHTTPSSPIFFE
		if files {
			return errors.New("server: the https_spiffe bundle endpoint presents the server's X509-SVID; a certificate file is for https_web")
		}
	case ProfileHTTPSWeb:
		if cfg.FederationCertFile == "" || cfg.FederationKeyFile == "" {
			return errors.New("server: the https_web bundle endpoint needs a certificate file and a key file")
		}
	default:
		return fmt.Errorf("server: unknown bundle endpoint profile %q (want https_spiffe or https_web)", cfg.FederationProfile)
	}
	return nil
}

// setUpFederation validates the relationships and prepares their watchers.
// Stored bundles of trust domains without a relationship are kept (they
// may have been set by hand) and named in the log.
func (s *Server) setUpFederation(ctx context.Context) error {
	rels, err := validateRelationships(s.cfg.TrustDomain, s.cfg.Federation, func(td spiffeid.TrustDomain) (bool, error) {
		_, err := s.store.GetBundle(ctx, td)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, registry.ErrNotFound):
			return false, nil
		}
		return false, fmt.Errorf("reading the stored bundle: %w", err)
	})
	if err != nil {
		return err
	}
	configured := map[spiffeid.TrustDomain]bool{}
	for _, r := range rels {
		configured[r.TrustDomain] = true
		s.watchers = append(s.watchers, &fedWatcher{
			rel:     r,
			trust:   s.trust,
			bundles: s.store,
			log: s.log.With("component", "federation", "trust_domain", r.TrustDomain.Name(),
				"url", r.URL, "profile", r.Profile),
			refresh: s.cfg.FederationRefresh,
			timeout: s.cfg.FederationTimeout,
		})
	}
	stored, err := s.store.ListBundles(ctx)
	if err != nil {
		return fmt.Errorf("server: reading the federated bundles: %w", err)
	}
	for _, b := range stored {
		if !configured[b.TrustDomain] {
			s.log.Info("a federated bundle without a federation relationship is kept; `bundle delete` ends the federation",
				"trust_domain", b.TrustDomain.Name())
		}
	}
	return nil
}

func datastoreKind(cfg Config) string {
	if cfg.Datastore == "" {
		return "sqlite"
	}
	return "postgres"
}

// loadServerID reads the server's stable ID from the data directory,
// creating it on first start.
func loadServerID(dir string) (string, error) {
	path := filepath.Join(dir, "server-id")
	b, err := atomicfile.Read(path, 256)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("server: reading the server ID: %w", err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("server: %w", err)
	}
	host, _ := os.Hostname()
	id := strings.Trim(host+"-"+hex.EncodeToString(raw), "-")
	if len(id) > registry.MaxServerIDLen {
		id = hex.EncodeToString(raw)
	}
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("server: saving the server ID: %w", err)
	}
	return id, nil
}

// Addr returns the address the node API listens on.
func (s *Server) Addr() net.Addr { return s.nodeLis.Addr() }

// ID returns the server's stable ID among the servers of its trust domain.
func (s *Server) ID() string { return s.serverID }

// TrustDomain returns the server's trust domain.
func (s *Server) TrustDomain() spiffeid.TrustDomain { return s.cfg.TrustDomain }

// CA returns the server's rotating CA, for operator actions.
func (s *Server) CA() *rotation.Manager { return s.ca }

// Store returns the server's datastore.
func (s *Server) Store() *sqlstore.Store { return s.store }

// Node returns the node API server.
func (s *Server) Node() *nodeapi.Server { return s.node }

// FederationAddr returns the address the bundle endpoint listens on, or
// nil when Config.FederationBind is empty.
func (s *Server) FederationAddr() net.Addr {
	if s.endpoint == nil {
		return nil
	}
	return s.endpoint.lis.Addr()
}

// Bundle returns the trust domain's bundle as the server hands it out.
func (s *Server) Bundle() *spiffebundle.Bundle { return s.trust.Bundle() }

// Run serves the node API, the admin socket and the bundle endpoint,
// listens for the datastore's notifications of writes (every server's, on
// PostgreSQL), pushes registry, agent record and CA changes to agents,
// rotates the CA, keeps the shared bundle fresh and polls the bundle
// endpoints of the federation relationships, until ctx is done; it then
// shuts down gracefully and returns nil. If one of these fails (a
// listener, the CA's rotation), the others stop and Run returns every
// failure.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	// run runs f on its own goroutine; its failure stops the others. The
	// ctx.Err() a Run returns once stopped is not a failure.
	run := func(f func(context.Context) error) {
		wg.Go(func() {
			err := f(ctx)
			if err == nil || ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return
			}
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
			cancel()
		})
	}
	// The store's Run tells of the writes of other servers sharing a
	// PostgreSQL database; the node API and the trust follow its
	// notifications.
	run(s.store.Run)
	run(func(ctx context.Context) error { return s.node.Serve(ctx, s.nodeLis) })
	run(s.node.Run)
	if s.admin != nil {
		run(func(ctx context.Context) error { return s.admin.Serve(ctx, s.adminLis) })
	}
	if s.endpoint != nil {
		run(s.endpoint.serve)
	}
	for _, w := range s.watchers {
		run(func(ctx context.Context) error { w.run(ctx); return nil })
	}
	run(s.ca.Run)
	run(func(ctx context.Context) error { s.refreshLoop(ctx); return nil })
	wg.Wait()
	return errors.Join(errs...)
}

// refreshLoop keeps the trust domain's bundle and the federated bundles
// fresh: it reads them again when the own CA changes, when the datastore
// tells of a write of the servers' shares or of the federated bundles, and
// every PollInterval, publishing the own share when it changed or is due
// for renewal. It also prunes expired join tokens.
func (s *Server) refreshLoop(ctx context.Context) {
	caUpdates, unsubscribe := s.ca.Subscribe()
	defer unsubscribe()
	writes, cancel := s.store.Subscribe(registry.TopicAuthorities | registry.TopicBundles)
	defer cancel()
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	prune := time.NewTicker(10 * time.Minute)
	defer prune.Stop()
	// Subscribed first: what changed since New is read now.
	s.refreshTrust(ctx)
	renew := time.NewTimer(s.trust.renewIn(minRenewWait))
	defer renew.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-caUpdates:
		case <-writes:
		case <-poll.C:
		case <-renew.C:
		case <-prune.C:
			if n, err := s.store.PruneTokens(ctx, time.Now()); err != nil {
				s.log.Warn("pruning expired join tokens failed", "err", err)
			} else if n > 0 {
				s.log.Info("pruned expired join tokens", "count", n)
			}
			continue
		}
		s.refreshTrust(ctx)
		renew.Reset(s.trust.renewIn(minRenewWait))
	}
}

// minRenewWait spaces the attempts to publish a share due for renewal
// when publishing fails.
const minRenewWait = 10 * time.Second

// refreshTrust refreshes the trust domain's bundle and the federated
// bundles, logging a failure.
func (s *Server) refreshTrust(ctx context.Context) {
	if err := s.trust.refresh(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("refreshing the bundle failed", "err", err)
	}
}

// Healthy returns nil when the server can issue: its CA has an active
// X.509 authority and the datastore answers.
func (s *Server) Healthy(ctx context.Context) error {
	if s.ca.X509Authority() == nil {
		return errors.New("server: no active X.509 CA")
	}
	if _, err := s.store.Head(ctx); err != nil {
		return fmt.Errorf("server: datastore: %w", err)
	}
	return nil
}

// Close releases what New opened. Run must have returned.
func (s *Server) Close() error {
	var errs []error
	s.closeOnce.Do(func() {
		if s.node != nil {
			errs = append(errs, s.node.Close())
		}
		if s.nodeLis != nil {
			s.nodeLis.Close()
		}
		if s.adminLis != nil {
			s.adminLis.Close()
		}
		if s.endpoint != nil {
			s.endpoint.lis.Close()
		}
		if s.store != nil {
			errs = append(errs, s.store.Close())
		}
	})
	return errors.Join(errs...)
}
