package nodeserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/ca"
	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/internal/nodepb"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/internal/wire"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/agentcache"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver/internal/authz"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Defaults of Config.
const (
	DefaultAgentSVIDTTL  = time.Hour
	DefaultPollInterval  = 30 * time.Second
	DefaultAttestTimeout = 30 * time.Second
	DefaultStoreTimeout  = 10 * time.Second
)

// A FederationSource gives the bundles of foreign trust domains that the
// server hands to agents, and signals when they change.
type FederationSource interface {
	// FederatedBundles returns the current bundles of foreign trust domains.
	FederatedBundles() []*spiffebundle.Bundle
	// Subscribe returns a channel that receives a value after the
	// federated bundles change (capacity 1, coalescing, never closed), and
	// a function that ends the subscription.
	Subscribe() (updates <-chan struct{}, unsubscribe func())
}

// DownstreamKeys keeps the JWT keys downstream servers publish.
type DownstreamKeys interface {
	// PutDownstreamJWTKeys replaces the JWT keys the downstream server
	// with SPIFFE ID id publishes (its own and those of the servers below
	// it) by keys, by key ID, and has them added to the trust domain's
	// bundle.
	PutDownstreamJWTKeys(ctx context.Context, id spiffeid.ID, keys map[string]crypto.PublicKey) error
}

// Config configures New. The struct is copied.
type Config struct {
	// Authority signs agent SVIDs and the SVIDs agents ask for, and
	// supplies the bundle and the tainted CAs agents receive; when it is
	// a ca.KeyTaintReporter, the tainted JWT and WIT keys too. Required.
	Authority ca.Authority

	// Registry holds the registration entries. Required. New
	// indexes it; Run follows its change feed, pushing changes to the
	// agents they concern: at once when the registry is a
	// registry.Notifier, else every PollInterval.
	Registry index.Source

	// Agents keeps the records of attested agents. Required. Servers that
	// share it share evictions and bans: Run reads the records again when
	// Agents, being a registry.Notifier, tells of a write, else every
	// PollInterval.
	Agents registry.AgentStore

	// Attestors are the node attestors agents may use, by Type. At least
	// one.
	Attestors []attest.NodeAttestor

	// Downstream, when not nil, keeps the JWT keys that downstream
	// (nested) servers publish (PublishJWTKeys), so that they reach the
	// trust domain's bundle. Nil refuses publications; downstream servers
	// may still have their CA signed (MintX509CA).
	Downstream DownstreamKeys

	// Federation, when not nil, supplies the federated bundles agents
	// receive: each agent, those of the trust domains its entries
	// federate with.
	Federation FederationSource

	// AgentSVIDTTL is the lifetime of agent SVIDs. Zero means
	// DefaultAgentSVIDTTL (1 hour).
	AgentSVIDTTL time.Duration

	// X509SVIDTTL and JWTSVIDTTL are the lifetimes of workload SVIDs for
	// entries without their own. Zero means ca.DefaultX509SVIDTTL and
	// ca.DefaultJWTSVIDTTL.
	X509SVIDTTL, JWTSVIDTTL time.Duration

	// WITSVIDTTL is the lifetime of the WIT-SVIDs signed for agents. Zero
	// means ca.DefaultWITSVIDTTL. WIT-SVIDs are signed only when
	// Authority is a ca.WITIssuer with an active WIT key; otherwise
	// SignWITSVID answers Unimplemented.
	WITSVIDTTL time.Duration

	// JWTSVIDJTI, when true, gives every JWT-SVID signed for an agent a
	// random "jti" claim (ca.JWTSVIDParams.JTI). False leaves it out.
	JWTSVIDJTI bool

	// JWTIssuer, when not empty, is the "iss" claim of every JWT-SVID
	// signed for an agent (ca.JWTSVIDParams.Issuer). Empty leaves it out.
	JWTIssuer string

	// PollInterval is the safety net of Run: how often it reads the
	// registry's change feed and the agent records without being told of a
	// write. A store that is a registry.Notifier tells of writes at once;
	// the poll catches what it cannot tell (see its documentation: SQLite,
	// for one, tells only of the writes made through the same store value).
	// Give a store that is not a Notifier a shorter interval. Zero means
	// DefaultPollInterval (30 s).
	PollInterval time.Duration

	// AttestTimeout bounds one node attestation exchange. Zero means
	// DefaultAttestTimeout.
	AttestTimeout time.Duration

	// StoreTimeout bounds each read and write of the agent records, and
	// each read of the registry's changes, that a call of an agent waits
	// on (sooner, if the call's own deadline comes first). A server cut
	// off from its database then answers Unavailable, and the agent tries
	// another server, instead of holding the call until the agent gives
	// up: an entry stream has no deadline, and would be held for good.
	// Zero means DefaultStoreTimeout (10 s).
	StoreTimeout time.Duration

	// MaxHandshakes is how many TLS handshakes of agents' connections
	// compute at once; the others wait for a turn, those already begun
	// first, at most HandshakeWait, after which their connection is
	// closed (counted in Stats.HandshakesRefused, logged at Debug, and
	// in a Warn line at most once a minute). A handshake waiting on its
	// agent holds no turn. This keeps a fleet reconnecting at once (a
	// server restart) from making every handshake as slow as all of them.
	// Zero means two per CPU the Go runtime may use (GOMAXPROCS).
	MaxHandshakes int

	// HandshakeWait bounds a handshake's wait for a turn (MaxHandshakes).
	// Zero means DefaultHandshakeWait (10 s).
	HandshakeWait time.Duration

	// Logger receives attestations, refusals and failures. Nil discards.
	Logger *slog.Logger

	// Observer, when not nil, is told of every call, node attestation and
	// signing (see Observer). Nil costs nothing.
	Observer Observer

	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// Server is the issuing server's side of the node protocol. It attests
// agents, keeps their records, streams each agent the registration entries
// it is authorized for, and signs SVIDs for those entries only.
//
// New starts nothing. Run follows the registry, the CA, the
// federated bundles and the agent records, and pushes their changes to the
// agents; Serve (or GRPCServer) answers the agents. Both are needed for a
// live server; see Run. It is safe for concurrent use.
type Server struct {
	cfg       Config
	log       *slog.Logger
	now       func() time.Time
	td        spiffeid.TrustDomain
	serverID  spiffeid.ID
	idx       *index.Index
	attestors map[string]attest.NodeAttestor

	// life admits one Run at a time until Close, whose Closed channel
	// ends the entry streams too.
	life *lifecycle.Guard

	// agents are the agent records, as the server read them last.
	agents *agentcache.Cache
	// entries are the entries each agent may obtain.
	entries *authz.Entries
	// records serializes the changes of one agent's record made from a
	// read of it.
	records recordLocks

	mu      sync.Mutex
	gen     uint64           // bumped on every change streams must see
	changed chan struct{}    // closed and replaced when gen is bumped
	tlsCert *tls.Certificate // the server's own SVID
	tlsDue  time.Time        // when to mint the next one
	tlsCA   []byte           // DER of the CA that signed tlsCert

	streams atomic.Int64 // open entry streams

	// handshakes are the turns of TLS handshakes (Config.MaxHandshakes),
	// shared by every gRPC server of the Server, and refused counts the
	// connections closed because theirs did not come in time.
	handshakes *turns
	refused    *refusals

	// wideChange is set when the index applied a change that may concern
	// every agent (see noteChange), until flushChanges wakes every stream.
	wideChange atomic.Bool
}

var _ nodepb.NodeServer = (*service)(nil)

// New checks cfg, indexes the registry and reads the agent records.
// It starts nothing; ctx bounds construction only.
func New(ctx context.Context, cfg Config) (*Server, error) {
	switch {
	case cfg.Authority == nil:
		return nil, errors.New("nodeserver: Config.Authority is required")
	case cfg.Registry == nil:
		return nil, errors.New("nodeserver: Config.Registry is required")
	case cfg.Agents == nil:
		return nil, errors.New("nodeserver: Config.Agents is required")
	case len(cfg.Attestors) == 0:
		return nil, errors.New("nodeserver: Config.Attestors needs at least one node attestor")
	case cfg.AgentSVIDTTL < 0 || cfg.X509SVIDTTL < 0 || cfg.JWTSVIDTTL < 0 || cfg.WITSVIDTTL < 0 || cfg.PollInterval < 0 ||
		cfg.AttestTimeout < 0 || cfg.HandshakeWait < 0 || cfg.StoreTimeout < 0:
		return nil, errors.New("nodeserver: durations must not be negative")
	case cfg.MaxHandshakes < 0:
		return nil, errors.New("nodeserver: Config.MaxHandshakes must not be negative")
	}
	b := cfg.Authority.Bundle()
	if b == nil || b.TrustDomain().IsZero() {
		return nil, errors.New("nodeserver: the authority has no bundle")
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Now,
		td:        b.TrustDomain(),
		attestors: make(map[string]attest.NodeAttestor),
		changed:   make(chan struct{}),
		life:      lifecycle.NewGuard(lifecycle.OneAtATime, errClosed, errors.New("nodeserver: Run is already running")),
		agents:    agentcache.New(cfg.Agents),
	}
	for _, a := range cfg.Attestors {
		if a == nil || a.Type() == "" {
			return nil, errors.New("nodeserver: a node attestor is nil or has no type")
		}
		if _, dup := s.attestors[a.Type()]; dup {
			return nil, fmt.Errorf("nodeserver: two node attestors of type %q", a.Type())
		}
		s.attestors[a.Type()] = a
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.AgentSVIDTTL == 0 {
		s.cfg.AgentSVIDTTL = DefaultAgentSVIDTTL
	}
	if s.cfg.PollInterval == 0 {
		s.cfg.PollInterval = DefaultPollInterval
	}
	if s.cfg.AttestTimeout == 0 {
		s.cfg.AttestTimeout = DefaultAttestTimeout
	}
	if s.cfg.StoreTimeout == 0 {
		s.cfg.StoreTimeout = DefaultStoreTimeout
	}
	if s.cfg.MaxHandshakes == 0 {
		s.cfg.MaxHandshakes = defaultMaxHandshakes()
	}
	if s.cfg.HandshakeWait == 0 {
		s.cfg.HandshakeWait = DefaultHandshakeWait
	}
	s.handshakes = newTurns(s.cfg.MaxHandshakes)
	s.refused = &refusals{log: s.log, wait: s.cfg.HandshakeWait, turns: s.cfg.MaxHandshakes, now: time.Now}
	var err error
	if s.serverID, err = spiffeid.FromPath(s.td, nodeapi.ServerPath); err != nil {
		return nil, fmt.Errorf("nodeserver: %w", err)
	}
	if s.idx, err = index.New(ctx, cfg.Registry, index.Config{ServerID: s.serverID, PollInterval: s.cfg.PollInterval, Now: s.now,
		OnExpire: func(e registry.Entry) {
			s.log.Info("entry expired; no agent obtains it any more", "entry_id", e.ID, "spiffe_id", e.SPIFFEID.String(), "expired_at", e.ExpiresAt)
			s.noteChange(&e, nil)
		},
		OnChange: func(ev registry.Event) {
			if ev.Op != registry.OpCreate && ev.Before == nil {
				s.wideChange.Store(true) // a feed that does not say where the entry was
			}
			s.noteChange(ev.Before, ev.After)
		},
	}); err != nil {
		return nil, fmt.Errorf("nodeserver: indexing the registry: %w", err)
	}
	s.entries = authz.New(s.idx, func() uint64 { gen, _ := s.watch(); return gen }, s.flushChanges)
	if _, err := s.agents.Reload(ctx); err != nil {
		return nil, fmt.Errorf("nodeserver: %w", err)
	}
	return s, nil
}

// TrustDomain returns the trust domain the server serves.
func (s *Server) TrustDomain() spiffeid.TrustDomain { return s.td }

// ID returns the SPIFFE ID the server presents to agents.
func (s *Server) ID() spiffeid.ID { return s.serverID }

// HandshakeAdmission returns the effective handshake admission: how many
// TLS handshakes of agents' connections compute at once and how long one
// waits for a turn, with Config's zeros replaced by their defaults.
func (s *Server) HandshakeAdmission() (maxHandshakes int, wait time.Duration) {
	return s.cfg.MaxHandshakes, s.cfg.HandshakeWait
}

// Index returns the server's index of the registry, for callers that want
// to query it (for example an admin API).
func (s *Server) Index() *index.Index { return s.idx }

// Close ends Run, if it runs, and the open entry streams (agents
// reconnect), and returns once Run has returned. Serve, which its ctx
// controls, keeps answering calls; the stores are the caller's. Close is
// idempotent and safe for concurrent use; it always returns nil.
func (s *Server) Close() error {
	s.life.Close()
	return nil
}

// errClosed is returned by Run and Serve after Close.
var errClosed = errors.New("nodeserver: the server is closed")

// Serve serves the node protocol over TLS on lis until ctx is done, then
// stops gracefully: entry streams and attestations waiting for the agent
// end at once (agents reconnect, to another server if they know one),
// other calls in flight finish. It closes lis, and returns nil once ctx is
// done. Serve works whether or not Run runs: without it, agents see the
// registry and the agent records as New read them (see Run). After
// Close, Serve returns an error at once.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	select {
	case <-s.life.Closed():
		lis.Close()
		return errClosed
	default:
	}
	gs := s.grpcServer(ctx.Done())
	stop := context.AfterFunc(ctx, gs.GracefulStop)
	defer stop()
	err := gs.Serve(lis)
	if ctx.Err() != nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("nodeserver: %w", err)
	}
	return nil
}

// GRPCServer returns a new gRPC server with the node service registered and
// the server's TLS credentials, for callers that serve it themselves. Its
// entry streams end when the Server is closed, not when it stops: call
// Close before GracefulStop, or use Stop.
func (s *Server) GRPCServer() *grpc.Server { return s.grpcServer(nil) }

// grpcServer builds a gRPC server whose long calls (entry streams,
// attestations waiting for the agent) end when drain is closed or the
// Server is. A nil drain is never closed.
func (s *Server) grpcServer(drain <-chan struct{}) *grpc.Server {
	creds := &admission{
		TransportCredentials: credentials.NewTLS(s.TLSConfig()),
		turns:                s.handshakes,
		wait:                 s.cfg.HandshakeWait,
		stop:                 []<-chan struct{}{drain, s.life.Closed()},
		refused:              s.refused,
	}
	gs := grpc.NewServer(
		grpc.Creds(creds),
		grpc.MaxRecvMsgSize(16<<20),
		// An agent needs a few streams at once (its entry stream, a
		// signing call, a renewal); this bounds what one connection can
		// hold open.
		grpc.MaxConcurrentStreams(64),
		// No read buffer of gRPC's own (32 KiB a connection by default,
		// a third of the server's heap at 10,000 agents): the TLS
		// connection beneath buffers the records it decrypts already.
		grpc.ReadBufferSize(0),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(s.unaryErrors),
		grpc.StreamInterceptor(s.streamErrors),
	)
	nodepb.RegisterNodeServer(gs, &service{s: s, drain: drain})
	return gs
}

// TLSConfig returns the server's TLS configuration: it presents the
// server's own X509-SVID (minted from the active CA and renewed at half
// life) and asks for, but does not require, a client certificate, which it
// verifies against the trust domain's current bundle at ServerConfig.Now.
// Only Attest may be called without one.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.certificate(context.Background()) },
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, _, err := x509svid.Verify(cs.PeerCertificates, s.cfg.Authority.Bundle(), x509svid.WithTime(s.now()))
			return err
		},
	}
}

// certificate returns the server's TLS certificate, minting a new one when
// none exists, half its life has passed or the active CA changed.
func (s *Server) certificate(ctx context.Context) (*tls.Certificate, error) {
	authority := s.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, errors.New("nodeserver: no active X.509 CA")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsCert != nil && now.Before(s.tlsDue) && string(s.tlsCA) == string(authority.Certificate().Raw) {
		return s.tlsCert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nodeserver: generating the server key: %w", err)
	}
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: s.serverID, TTL: s.cfg.AgentSVIDTTL})
	if err != nil {
		return nil, fmt.Errorf("nodeserver: minting the server SVID: %w", err)
	}
	leaf := chain[0]
	s.tlsCert = &tls.Certificate{Certificate: wire.ChainToDER(chain), PrivateKey: key, Leaf: leaf}
	s.tlsDue = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	s.tlsCA = authority.Certificate().Raw
	return s.tlsCert, nil
}

// Run follows the registry's change feed and the agent records, the CA and
// the federated bundles, and wakes the entry streams each change concerns.
// A store that is a registry.Notifier is read at once when it tells of a
// write (the agent records at most every 100 ms, or ten times as long as
// their last read took, so that thousands of agents renewing cost a few
// reads a second); every PollInterval both are read anyway, as a safety
// net. The CA and the federated bundles tell
// of their changes through their Subscribe. Run first catches up with what
// changed since New.
//
// Run blocks until ctx is done, when it returns ctx.Err(), or Close is
// called, when it returns nil. A failed read of the registry or the
// agent records is logged and tried again; no failure is fatal today. Only
// one Run may run at a time, and not after Close.
//
// Without Run, Serve still answers agents, from the index and the agent
// records as New read them, and the server pushes no change.
func (s *Server) Run(ctx context.Context) error {
	ctx, done, err := s.life.Begin(ctx) // a ctx Close ends too
	if err != nil {
		return err
	}
	defer done()

	// Subscribed before catching up, so that no change falls between.
	caUpdates, unsubscribe := s.cfg.Authority.Subscribe()
	defer unsubscribe()
	var fedUpdates <-chan struct{}
	if s.cfg.Federation != nil {
		var unsubscribeFed func()
		fedUpdates, unsubscribeFed = s.cfg.Federation.Subscribe()
		defer unsubscribeFed()
	}
	entryWrites, cancelEntries := subscribe(s.cfg.Registry, registry.TopicEntries)
	defer cancelEntries()
	agentWrites, cancelAgents := subscribe(s.cfg.Agents, registry.TopicAgents)
	defer cancelAgents()
	if entryWrites == nil || agentWrites == nil {
		s.log.Info("a store does not tell of its writes; reading it every poll interval",
			"registry_notifies", entryWrites != nil, "agents_notify", agentWrites != nil, "poll_interval", s.cfg.PollInterval)
	}
	s.syncIndex(ctx)
	agents := agentcache.Reloader{Cache: s.agents, Changed: s.bump, Log: s.log}
	agents.Reload(ctx)
	s.bump()

	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	defer agents.Stop()
	for {
		// An entry leaves the index at its expiry when the index is synced:
		// the streams of the agents serving it are woken then.
		var expiry <-chan time.Time
		if at := s.idx.NextExpiry(); !at.IsZero() {
			expiry = time.After(max(at.Sub(s.now()), 0))
		}
		select {
		case <-ctx.Done():
			select {
			case <-s.life.Closed():
				return nil
			default:
				return ctx.Err()
			}
		case <-expiry:
			s.syncIndex(ctx)
		case <-entryWrites:
			s.syncIndex(ctx)
		case <-agentWrites:
			agents.Signalled(ctx)
		case <-agents.Due():
			agents.Reload(ctx)
		case <-poll.C:
			s.syncIndex(ctx)
			agents.Reload(ctx)
		case <-caUpdates:
			s.bump()
		case <-fedUpdates:
			s.bump()
		}
	}
}

// subscribe subscribes to topics of store if it is a registry.Notifier;
// otherwise it returns a nil channel, never ready.
func subscribe(store any, topics registry.Topic) (<-chan struct{}, func()) {
	if n, ok := store.(registry.Notifier); ok {
		return n.Subscribe(topics)
	}
	return nil, func() {}
}

// syncIndex applies the registry's changes and wakes the streams they
// concern (see noteChange).
func (s *Server) syncIndex(ctx context.Context) {
	_, err := s.idx.Sync(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("reading the registry's changes failed", "err", err)
	}
	s.flushChanges()
}

// noteChange directs a change of an entry that the index applied, given
// as the entry before and after it (nil for none), to the streams it
// concerns. An entry parented by an agent's ID concerns that agent alone:
// no entry may have an agent's ID as its SPIFFE ID (registry.Reserved), so
// no other agent reaches it through a parent link. Its streams are woken
// at once, and the others not at all, so that a change costs the server
// the same whatever the number of agents connected. Any other entry (a
// node alias, one parented by an alias or by another entry) may concern
// every agent: flushChanges wakes every stream after the read of the
// change feed.
func (s *Server) noteChange(before, after *registry.Entry) {
	for _, e := range []*registry.Entry{before, after} {
		switch {
		case e == nil:
		case !registry.IsAgentID(e.ParentID):
			s.wideChange.Store(true)
		case s.entries != nil: // nil while New builds the index: no stream yet
			s.entries.Invalidate(e.ParentID)
			s.agents.Wake(e.ParentID)
		}
	}
}

// flushChanges wakes every stream if the index applied a change that may
// concern every agent since the last call.
func (s *Server) flushChanges() {
	if s.wideChange.Swap(false) {
		s.bump()
	}
}

// bump tells every open stream to look again.
func (s *Server) bump() {
	s.mu.Lock()
	s.gen++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// watch returns the current generation and the channel closed when it
// ends.
func (s *Server) watch() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen, s.changed
}

// putAgent stores an agent record and caches it. The store keeps a ban
// written since a was read (through another server): the agent is then
// refused, and what was issued to it meanwhile is not sent.
func (s *Server) putAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	ctx, cancel := s.storeCall(ctx)
	defer cancel()
	stored, err := s.agents.Put(ctx, a)
	if err != nil {
		return registry.Agent{}, unavailable("writing an agent record", err)
	}
	return refuseBanned(stored)
}

// updateAgent writes an agent record that must still exist, as putAgent
// does: an agent evicted (through another server) since a was read is
// refused, and its record stays deleted, instead of being written back.
func (s *Server) updateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	ctx, cancel := s.storeCall(ctx)
	defer cancel()
	stored, err := s.agents.Update(ctx, a)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return registry.Agent{}, fmt.Errorf("%w: agent %s, evicted meanwhile", errEvicted, a.ID)
	case err != nil:
		return registry.Agent{}, unavailable("writing an agent record", err)
	}
	return refuseBanned(stored)
}

// refuseBanned refuses the agent of a record just written if it was
// banned meanwhile.
func refuseBanned(a registry.Agent) (registry.Agent, error) {
	if a.Banned {
		return registry.Agent{}, fmt.Errorf("%w: agent %s, banned meanwhile", errBanned, a.ID)
	}
	return a, nil
}

// storeCall bounds a store call made for a call of an agent by
// Config.StoreTimeout.
func (s *Server) storeCall(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.StoreTimeout)
}

// agentRecord returns the cached record of id, reading the store when the
// cache has none (the agent may have attested through another server).
func (s *Server) agentRecord(ctx context.Context, id spiffeid.ID) (registry.Agent, bool, error) {
	ctx, cancel := s.storeCall(ctx)
	defer cancel()
	a, found, err := s.agents.Get(ctx, id)
	if err != nil {
		return registry.Agent{}, false, unavailable("reading an agent record", err)
	}
	return a, found, nil
}

// storedAgentRecord reads the record of id from the store, bypassing the
// cache, and caches it.
func (s *Server) storedAgentRecord(ctx context.Context, id spiffeid.ID) (registry.Agent, bool, error) {
	ctx, cancel := s.storeCall(ctx)
	defer cancel()
	a, found, err := s.agents.Read(ctx, id)
	if err != nil {
		return registry.Agent{}, false, unavailable("reading an agent record", err)
	}
	return a, found, nil
}

// authorizedCurrent returns the entries agent a may obtain (see
// authz.Entries.Current): it fails, with errUnavailable, only when the
// read of the registry's changes it may need fails.
func (s *Server) authorizedCurrent(ctx context.Context, a registry.Agent, lacks func(map[string]registry.Entry) bool) (map[string]registry.Entry, error) {
	storeCtx, cancel := s.storeCall(ctx)
	defer cancel()
	m, err := s.entries.Current(storeCtx, a, lacks)
	if err != nil && ctx.Err() == nil {
		return nil, unavailable("agent "+a.ID.String(), err)
	}
	return m, err
}
