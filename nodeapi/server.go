package nodeapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
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
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/index"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
)

// Defaults of ServerConfig.
const (
	DefaultAgentSVIDTTL  = time.Hour
	DefaultPollInterval  = 30 * time.Second
	DefaultAttestTimeout = 30 * time.Second
)

// Signals of agent record writes are followed at once, but the reads of
// every record they cause are spaced: at least minAgentReload apart, and
// agentReloadShare times as long as the last read took, so that a fleet
// renewing its SVIDs (each renewal a write, through this server or
// another) costs a bounded share of the server's time and of the
// database's, whatever its size.
const (
	minAgentReload   = 100 * time.Millisecond
	agentReloadShare = 10
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

// ServerConfig configures NewServer. The struct is copied.
type ServerConfig struct {
	// Authority signs agent SVIDs and the SVIDs agents ask for, and
	// supplies the bundle and the tainted CAs agents receive. Required.
	Authority ca.Authority

	// Registry holds the registration entries. Required. NewServer
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

	// Federation, when not nil, supplies the federated bundles agents
	// receive.
	Federation FederationSource

	// AgentSVIDTTL is the lifetime of agent SVIDs. Zero means
	// DefaultAgentSVIDTTL (1 hour).
	AgentSVIDTTL time.Duration

	// X509SVIDTTL and JWTSVIDTTL are the lifetimes of workload SVIDs for
	// entries without their own. Zero means ca.DefaultX509SVIDTTL and
	// ca.DefaultJWTSVIDTTL.
	X509SVIDTTL, JWTSVIDTTL time.Duration

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
// NewServer starts nothing. Run follows the registry, the CA, the
// federated bundles and the agent records, and pushes their changes to the
// agents; Serve (or GRPCServer) answers the agents. Both are needed for a
// live server; see Run. It is safe for concurrent use.
type Server struct {
	cfg       ServerConfig
	log       *slog.Logger
	now       func() time.Time
	td        spiffeid.TrustDomain
	serverID  spiffeid.ID
	idx       *index.Index
	attestors map[string]attest.NodeAttestor

	// life admits one Run at a time until Close, whose Closed channel
	// ends the entry streams too.
	life *lifecycle.Guard

	mu      sync.Mutex
	gen     uint64        // bumped on every change streams must see
	changed chan struct{} // closed and replaced when gen is bumped
	agents  map[spiffeid.ID]registry.Agent
	// follows are the agents with open entry streams here: their streams
	// look again when the cached record's serials change, or it goes.
	follows map[spiffeid.ID]*agentFollow
	tlsCert *tls.Certificate // the server's own SVID
	tlsDue  time.Time        // when to mint the next one
	tlsCA   []byte           // DER of the CA that signed tlsCert
	authz   map[spiffeid.ID]authzCache

	streams atomic.Int64 // open entry streams

	// Reads of the registry's changes that must not wait for Run (see
	// catchUp): one at a time, each serving every caller that asked
	// before it began.
	catchTurn  chan struct{} // capacity 1: held by the read under way
	catchAsked atomic.Uint64 // catch-ups asked for so far
	catchDone  uint64        // guarded by catchTurn: the asks the last read served
}

// authzCache is the set of entries an agent may obtain, computed once per
// generation.
type authzCache struct {
	gen       uint64
	selectors []attest.Selector // the agent's, when computed
	entries   map[string]registry.Entry
}

var _ nodepb.NodeServer = (*service)(nil)

// NewServer checks cfg, indexes the registry and reads the agent records.
// It starts nothing; ctx bounds construction only.
func NewServer(ctx context.Context, cfg ServerConfig) (*Server, error) {
	switch {
	case cfg.Authority == nil:
		return nil, errors.New("nodeapi: ServerConfig.Authority is required")
	case cfg.Registry == nil:
		return nil, errors.New("nodeapi: ServerConfig.Registry is required")
	case cfg.Agents == nil:
		return nil, errors.New("nodeapi: ServerConfig.Agents is required")
	case len(cfg.Attestors) == 0:
		return nil, errors.New("nodeapi: ServerConfig.Attestors needs at least one node attestor")
	case cfg.AgentSVIDTTL < 0 || cfg.X509SVIDTTL < 0 || cfg.JWTSVIDTTL < 0 || cfg.PollInterval < 0 ||
		cfg.AttestTimeout < 0:
		return nil, errors.New("nodeapi: durations must not be negative")
	}
	b := cfg.Authority.Bundle()
	if b == nil || b.TrustDomain().IsZero() {
		return nil, errors.New("nodeapi: the authority has no bundle")
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		now:       cfg.Now,
		td:        b.TrustDomain(),
		attestors: make(map[string]attest.NodeAttestor),
		changed:   make(chan struct{}),
		life:      lifecycle.NewGuard(lifecycle.OneAtATime, errClosed, errors.New("nodeapi: Run is already running")),
		authz:     make(map[spiffeid.ID]authzCache),
		follows:   make(map[spiffeid.ID]*agentFollow),
		catchTurn: make(chan struct{}, 1),
	}
	for _, a := range cfg.Attestors {
		if a == nil || a.Type() == "" {
			return nil, errors.New("nodeapi: a node attestor is nil or has no type")
		}
		if _, dup := s.attestors[a.Type()]; dup {
			return nil, fmt.Errorf("nodeapi: two node attestors of type %q", a.Type())
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
	var err error
	if s.serverID, err = spiffeid.FromPath(s.td, ServerPath); err != nil {
		return nil, fmt.Errorf("nodeapi: %w", err)
	}
	if s.idx, err = index.New(ctx, cfg.Registry, index.Config{ServerID: s.serverID, PollInterval: s.cfg.PollInterval}); err != nil {
		return nil, fmt.Errorf("nodeapi: indexing the registry: %w", err)
	}
	if _, err := s.reloadAgentsChanged(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// TrustDomain returns the trust domain the server serves.
func (s *Server) TrustDomain() spiffeid.TrustDomain { return s.td }

// ID returns the SPIFFE ID the server presents to agents.
func (s *Server) ID() spiffeid.ID { return s.serverID }

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
var errClosed = errors.New("nodeapi: the server is closed")

// Serve serves the node protocol over TLS on lis until ctx is done, then
// stops gracefully: entry streams and attestations waiting for the agent
// end at once (agents reconnect, to another server if they know one),
// other calls in flight finish. It closes lis, and returns nil once ctx is
// done. Serve works whether or not Run runs: without it, agents see the
// registry and the agent records as NewServer read them (see Run). After
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
		return fmt.Errorf("nodeapi: %w", err)
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
	gs := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(s.TLSConfig())),
		grpc.MaxRecvMsgSize(16<<20),
		// An agent needs a few streams at once (its entry stream, a
		// signing call, a renewal); this bounds what one connection can
		// hold open.
		grpc.MaxConcurrentStreams(64),
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
// verifies against the trust domain's current bundle. Only Attest may be
// called without one.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.certificate(context.Background()) },
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, _, err := x509svid.Verify(cs.PeerCertificates, s.cfg.Authority.Bundle())
			return err
		},
	}
}

// certificate returns the server's TLS certificate, minting a new one when
// none exists, half its life has passed or the active CA changed.
func (s *Server) certificate(ctx context.Context) (*tls.Certificate, error) {
	authority := s.cfg.Authority.X509Authority()
	if authority == nil {
		return nil, errors.New("nodeapi: no active X.509 CA")
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tlsCert != nil && now.Before(s.tlsDue) && string(s.tlsCA) == string(authority.Certificate().Raw) {
		return s.tlsCert, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("nodeapi: generating the server key: %w", err)
	}
	chain, err := authority.SignX509SVID(ctx, ca.X509SVIDParams{PublicKey: key.Public(), ID: s.serverID, TTL: s.cfg.AgentSVIDTTL})
	if err != nil {
		return nil, fmt.Errorf("nodeapi: minting the server SVID: %w", err)
	}
	leaf := chain[0]
	s.tlsCert = &tls.Certificate{Certificate: chainToDER(chain), PrivateKey: key, Leaf: leaf}
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
// changed since NewServer.
//
// Run blocks until ctx is done, when it returns ctx.Err(), or Close is
// called, when it returns nil. A failed read of the registry or the
// agent records is logged and tried again; no failure is fatal today. Only
// one Run may run at a time, and not after Close.
//
// Without Run, Serve still answers agents, from the index and the agent
// records as NewServer read them, and the server pushes no change.
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
	agents := agentReloader{s: s}
	agents.reload(ctx)
	s.bump()

	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	defer agents.stop()
	for {
		select {
		case <-ctx.Done():
			select {
			case <-s.life.Closed():
				return nil
			default:
				return ctx.Err()
			}
		case <-entryWrites:
			s.syncIndex(ctx)
		case <-agentWrites:
			agents.signalled(ctx)
		case <-agents.due():
			agents.reload(ctx)
		case <-poll.C:
			s.syncIndex(ctx)
			agents.reload(ctx)
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

// agentReloader spaces the reads of every agent record that signals of
// agent writes cause. A signal after a quiet spell is followed at once;
// signals that come sooner than minAgentReload, or agentReloadShare times
// the last read's duration, after the last read are folded into one read
// at the end of that gap. The renewals of thousands of agents therefore
// cost a few reads a second, not one each.
//
// Reading only the records that changed would cost less again, but
// evictions leave no record to find: the store would have to list
// deletions too.
type agentReloader struct {
	s     *Server
	next  time.Time   // when a signal may cause a read again
	timer *time.Timer // pending read, or nil
}

// signalled follows a signal of agent writes: it reads the records now or
// schedules a read.
func (r *agentReloader) signalled(ctx context.Context) {
	if r.timer != nil {
		return // a read is due; it will see this write too
	}
	if wait := time.Until(r.next); wait > 0 {
		r.timer = time.NewTimer(wait)
		return
	}
	r.reload(ctx)
}

// due returns the channel of the pending read, or nil.
func (r *agentReloader) due() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

// reload reads the records, wakes the streams if one they concern changed,
// and sets when the next signal may cause a read.
func (r *agentReloader) reload(ctx context.Context) {
	r.stop()
	start := time.Now()
	if r.s.reloadAgentsLogged(ctx) {
		// Only then: waking every stream costs each a look at its
		// entries.
		r.s.bump()
	}
	r.next = start.Add(max(minAgentReload, agentReloadShare*time.Since(start)))
}

// stop drops the pending read.
func (r *agentReloader) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// syncIndex applies the registry's changes and wakes the streams if there
// were any.
func (s *Server) syncIndex(ctx context.Context) {
	n, err := s.idx.Sync(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("reading the registry's changes failed", "err", err)
	}
	if n > 0 {
		s.bump()
	}
}

// reloadAgentsLogged reads the agent records and reports whether streams
// must look again; a failure is logged, and the records kept.
func (s *Server) reloadAgentsLogged(ctx context.Context) (changed bool) {
	changed, err := s.reloadAgentsChanged(ctx)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("reading the agent records failed", "err", err)
	}
	return changed
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

// reloadAgentsChanged reads the agent records and reports whether an agent
// read before was removed, banned or changed its selectors, or one not read
// before is banned: what open streams must react to.
func (s *Server) reloadAgentsChanged(ctx context.Context) (bool, error) {
	list, err := s.cfg.Agents.ListAgents(ctx)
	if err != nil {
		return false, fmt.Errorf("nodeapi: reading the agent records: %w", err)
	}
	m := make(map[spiffeid.ID]registry.Agent, len(list))
	for _, a := range list {
		m[a.ID] = a
	}
	// Compared under the lock: once published, m is written by putAgent.
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.agents
	s.agents = m
	for id := range s.follows {
		a, wasCached := old[id]
		b, isCached := m[id]
		if wasCached != isCached || !sameSerials(a, b) {
			s.wakeAgentLocked(id)
		}
	}
	for id, a := range old {
		b, ok := m[id]
		if !ok || a.Banned != b.Banned || !slices.Equal(a.Selectors, b.Selectors) {
			return true, nil
		}
	}
	// A record new here concerns no open stream (a stream's agent is cached
	// from the moment it authenticates), so a fleet attesting does not make
	// every stream look again; unless it is banned, in case the cache lost
	// it to a read that raced with a write.
	for id, b := range m {
		if _, ok := old[id]; !ok && b.Banned {
			return true, nil
		}
	}
	return false, nil
}

// putAgent stores an agent record and caches it. The store keeps a ban
// written since a was read (through another server): the agent is then
// refused, and what was issued to it meanwhile is not sent.
func (s *Server) putAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	stored, err := s.cfg.Agents.PutAgent(ctx, a)
	if err != nil {
		return registry.Agent{}, unavailable("storing the agent record of "+a.ID.String(), err)
	}
	return s.stored(stored)
}

// updateAgent writes an agent record that must still exist, as putAgent
// does: an agent evicted (through another server) since a was read is
// refused, and its record stays deleted, instead of being written back.
func (s *Server) updateAgent(ctx context.Context, a registry.Agent) (registry.Agent, error) {
	stored, err := s.cfg.Agents.UpdateAgent(ctx, a)
	if errors.Is(err, registry.ErrNotFound) {
		s.mu.Lock()
		if _, ok := s.agents[a.ID]; ok {
			delete(s.agents, a.ID)
			s.wakeAgentLocked(a.ID)
		}
		s.mu.Unlock()
		return registry.Agent{}, fmt.Errorf("%w: agent %s, evicted meanwhile", errEvicted, a.ID)
	}
	if err != nil {
		return registry.Agent{}, unavailable("updating the agent record of "+a.ID.String(), err)
	}
	return s.stored(stored)
}

// stored caches a record just written, and refuses a banned agent.
func (s *Server) stored(a registry.Agent) (registry.Agent, error) {
	s.mu.Lock()
	s.cacheAgentLocked(a)
	s.mu.Unlock()
	if a.Banned {
		return registry.Agent{}, fmt.Errorf("%w: agent %s, banned meanwhile", errBanned, a.ID)
	}
	return a, nil
}

// cacheAgentLocked caches a, and wakes the entry streams of its agent if
// its serials changed: a stream opened with an SVID that is now superseded
// must end (see service.recheck). s.mu must be held.
func (s *Server) cacheAgentLocked(a registry.Agent) {
	old, ok := s.agents[a.ID]
	s.agents[a.ID] = a
	if !ok || !sameSerials(old, a) {
		s.wakeAgentLocked(a.ID)
	}
}

// sameSerials reports whether a and b name the same current and previous
// agent SVIDs.
func sameSerials(a, b registry.Agent) bool {
	return a.SerialNumber == b.SerialNumber && a.PreviousSerialNumber == b.PreviousSerialNumber
}

// agentFollow wakes the entry streams of one agent.
type agentFollow struct {
	streams int           // open entry streams of the agent
	changed chan struct{} // closed and replaced by wakeAgentLocked
}

// followAgent registers an entry stream of agent id. changed returns the
// channel closed when the agent's cached record next changes serials or
// goes (take it before reading the record); stop ends the registration.
// Only the agent's own streams wake, not every stream: renewals are
// frequent.
func (s *Server) followAgent(id spiffeid.ID) (changed func() <-chan struct{}, stop func()) {
	s.mu.Lock()
	f, ok := s.follows[id]
	if !ok {
		f = &agentFollow{changed: make(chan struct{})}
		s.follows[id] = f
	}
	f.streams++
	s.mu.Unlock()
	changed = func() <-chan struct{} {
		s.mu.Lock()
		defer s.mu.Unlock()
		return f.changed
	}
	stop = func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if f.streams--; f.streams == 0 {
			delete(s.follows, id)
		}
	}
	return changed, stop
}

// wakeAgentLocked wakes the entry streams of agent id. s.mu must be held.
func (s *Server) wakeAgentLocked(id spiffeid.ID) {
	if f, ok := s.follows[id]; ok {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

// agentRecord returns the cached record of id, reading the store when the
// cache has none (the agent may have attested through another server).
func (s *Server) agentRecord(ctx context.Context, id spiffeid.ID) (registry.Agent, bool, error) {
	s.mu.Lock()
	a, ok := s.agents[id]
	s.mu.Unlock()
	if ok {
		return a, true, nil
	}
	return s.storedAgentRecord(ctx, id)
}

// storedAgentRecord reads the record of id from the store, bypassing the
// cache, and caches it.
func (s *Server) storedAgentRecord(ctx context.Context, id spiffeid.ID) (registry.Agent, bool, error) {
	a, err := s.cfg.Agents.GetAgent(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return registry.Agent{}, false, nil
	}
	if err != nil {
		return registry.Agent{}, false, unavailable("reading the agent record of "+id.String(), err)
	}
	s.mu.Lock()
	s.cacheAgentLocked(a)
	s.mu.Unlock()
	return a, true, nil
}

// authorized returns the entries agent a may obtain, by entry ID, as the
// index has them.
func (s *Server) authorized(a registry.Agent) map[string]registry.Entry {
	gen, _ := s.watch()
	s.mu.Lock()
	c, ok := s.authz[a.ID]
	s.mu.Unlock()
	// The selectors are compared too: an agent attested again under the
	// same ID with other selectors must not keep what the old ones gave.
	if ok && c.gen == gen && slices.Equal(c.selectors, a.Selectors) {
		return c.entries
	}
	return s.indexAuthorized(a, gen)
}

// authorizedCurrent returns the entries agent a may obtain, as authorized
// does, unless lacks reports that they lack what the agent holds or asks
// for (an entry, or its revision). That may only mean that this server
// has not read the registry as far as the one the agent got it from:
// servers sharing a store read each other's writes at their next
// notification or poll, and an agent that fails over arrives with what
// the other one sent. Then it catches up with the registry first, so that
// it tells the agent to delete, or refuses, only what the registry really
// does not hold for it. It fails, with errUnavailable, only when that read
// fails.
func (s *Server) authorizedCurrent(ctx context.Context, a registry.Agent, lacks func(map[string]registry.Entry) bool) (map[string]registry.Entry, error) {
	m := s.authorized(a)
	if !lacks(m) {
		return m, nil
	}
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	// Not from the cache: Run may have applied the changes this read found
	// already applied, and not yet bumped the generation.
	gen, _ := s.watch()
	return s.indexAuthorized(a, gen), nil
}

// catchUp applies the registry's changes made until now, without waiting
// for Run. Callers that ask while a read is under way share the next one:
// a read that began after a caller asked serves it.
func (s *Server) catchUp(ctx context.Context) error {
	ticket := s.catchAsked.Add(1)
	select {
	case s.catchTurn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.catchTurn }()
	if s.catchDone >= ticket {
		return nil
	}
	asked := s.catchAsked.Load()
	n, err := s.idx.Sync(ctx)
	if err != nil {
		return unavailable("reading the registry's changes", err)
	}
	if n > 0 {
		s.bump()
	}
	s.catchDone = asked
	return nil
}

// indexAuthorized reads from the index the entries agent a may obtain,
// and caches them for generation gen.
func (s *Server) indexAuthorized(a registry.Agent, gen uint64) map[string]registry.Entry {
	list := s.idx.ForAgent(a.ID, a.Selectors)
	m := make(map[string]registry.Entry, len(list))
	for _, e := range list {
		m[e.ID] = e
	}
	s.mu.Lock()
	if len(s.authz) > 100000 {
		clear(s.authz)
	}
	s.authz[a.ID] = authzCache{gen: gen, selectors: a.Selectors, entries: m}
	s.mu.Unlock()
	return m
}
