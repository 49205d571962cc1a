package adminserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/spiffekit/spiffekit/admin/internal/wire"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/internal/unixsock"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// MaxRequestBody bounds the body of one request in bytes: room for the
// largest bundle document a store keeps plus its framing.
const MaxRequestBody = 1<<20 + registry.MaxBundleDocument

// ShutdownGrace bounds how long Serve waits, once its ctx is done, for
// requests in flight to finish before it closes their connections.
const ShutdownGrace = 5 * time.Second

// DefaultRequestTimeout bounds the work of one request when
// Config.RequestTimeout is zero.
const DefaultRequestTimeout = 20 * time.Second

// A TokenIssuer makes join tokens: single-use secrets that admit one node
// agent. The admin API hands the token to the operator once; it never
// logs it.
type TokenIssuer interface {
	// GenerateToken makes a token valid for ttl. A non-zero alias is a
	// SPIFFE ID of the trust domain, outside the reserved namespace
	// (registry.Reserved), that becomes a node alias of the agent the
	// token admits: entries parented by alias are served by that agent.
	// The agent's own ID stays the one its attestor derives. Errors
	// wrapping registry.ErrInvalid are reported to the caller as invalid
	// input.
	GenerateToken(ctx context.Context, ttl time.Duration, alias spiffeid.ID) (token string, expiresAt time.Time, err error)
}

// Config configures [New]. The struct is copied; its slices are not kept.
type Config struct {
	// TrustDomain is the server's own trust domain. Required. Entries must
	// name IDs in it, and no federated bundle may be set for it.
	TrustDomain spiffeid.TrustDomain
	// Entries keeps the registration entries. Required.
	Entries registry.Store
	// Agents keeps the records of attested agents. Required.
	Agents registry.AgentStore
	// Bundles keeps the bundles of federated trust domains. Required.
	Bundles registry.BundleStore
	// Tokens makes join tokens. Required.
	Tokens TokenIssuer
	// Bundle returns the trust domain's own bundle as it is now, or nil
	// while there is none yet. It is called on every bundle request and
	// must be safe for concurrent use. Required.
	Bundle func() *spiffebundle.Bundle
	// Authorities operates the trust domain's CA (the authorities
	// routes). Nil answers them 404: the server has no CA to operate.
	Authorities AuthorityManager
	// Minter signs the SVIDs operators ask for (the mint routes). Nil
	// answers them 404: the server mints none on request.
	Minter SVIDMinter
	// Federation keeps the federation relationships (the
	// federation/relationships routes). Nil answers them 404: the server
	// keeps none in a datastore.
	Federation FederationManager
	// Health reports whether the server can do its work, for the status
	// route: nil when it can, else why not. It is called on every status
	// request, bounded by RequestTimeout, and must be safe for concurrent
	// use. Nil means healthy whenever the API answers.
	Health func(ctx context.Context) error
	// Logger receives refused callers (at Warn) and internal errors. Nil
	// discards the output.
	Logger *slog.Logger
	// AllowedUIDs are the uids of the processes that may use the API. Nil
	// or empty means root (0) and the server's own uid.
	AllowedUIDs []int
	// RequestTimeout bounds the work of one request: when its stores have
	// not answered by then (a database out of reach), the request fails
	// with 503 and the code "unavailable", saying so, instead of leaving
	// the caller waiting. Zero means DefaultRequestTimeout.
	RequestTimeout time.Duration
	// Now is the clock against which an entry's expiry is checked: an
	// entry written with an expiry that has come is refused. Nil means
	// time.Now.
	Now func() time.Time
}

// Server serves the administration API. Every connection is identified by
// its kernel credentials (SO_PEERCRED) when it is accepted, and every
// request on a connection whose uid is not allowed is answered 403: the
// socket's file mode is a first fence, the uid check the one that holds.
// Connections whose credentials cannot be read are refused the same way,
// so the API must be served on a unix socket (see [ListenUnix]).
//
// A Server is safe for concurrent use; one Server may serve several
// listeners at once.
type Server struct {
	cfg     Config
	log     *slog.Logger
	allowed []int
	mux     *http.ServeMux
}

// New returns a server for cfg. It fails when a required field is missing.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, errors.New("admin: trust domain is required")
	case cfg.Entries == nil:
		return nil, errors.New("admin: entry store is required")
	case cfg.Agents == nil:
		return nil, errors.New("admin: agent store is required")
	case cfg.Bundles == nil:
		return nil, errors.New("admin: bundle store is required")
	case cfg.Tokens == nil:
		return nil, errors.New("admin: token issuer is required")
	case cfg.Bundle == nil:
		return nil, errors.New("admin: bundle source is required")
	case cfg.RequestTimeout < 0:
		return nil, errors.New("admin: the request timeout must not be negative")
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.allowed = slices.Clone(cfg.AllowedUIDs)
	if len(s.allowed) == 0 {
		s.allowed = []int{0, os.Getuid()}
	}
	s.cfg.AllowedUIDs = nil
	s.mux = s.routes()
	return s, nil
}

// Serve answers API requests on lis until ctx is done, then shuts down
// gracefully: it stops accepting, waits up to [ShutdownGrace] for requests
// in flight, closes lis and returns nil. It returns early, with the error,
// when lis fails. The caller owns the goroutine that runs Serve.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	err := unixsock.ServeHTTP(ctx, lis, unixsock.HTTP{Handler: s, ConnContext: s.connContext,
		MaxHeaderBytes: 64 << 10, Log: s.log, ShutdownGrace: ShutdownGrace})
	if err != nil {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// peer is what the kernel told about a connection's process.
type peer struct {
	pid, uid int
	err      error // credentials could not be read
	allowed  bool
}

type peerKey struct{}

// connContext identifies the process behind a new connection once, from
// the kernel, and logs a refused one (once per connection, so that a
// refused caller cannot flood the log by sending requests).
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	var p peer
	// Only a unix socket carries credentials the kernel vouches for; on
	// TCP, SO_PEERCRED answers uid -1, and nothing else can be trusted.
	if uc, ok := c.(*net.UnixConn); ok {
		if p.pid, p.uid, p.err = unixsock.PeerCredentials(uc); p.err != nil {
			p.err = fmt.Errorf("admin: %w", p.err)
		}
	} else {
		p.err = fmt.Errorf("admin: %T is not a unix socket connection", c)
	}
	p.allowed = p.err == nil && slices.Contains(s.allowed, p.uid)
	switch {
	case p.err != nil:
		s.log.Warn("admin: refused a connection whose credentials could not be read", "err", p.err)
	case !p.allowed:
		s.log.Warn("admin: refused a connection from a uid that may not administer this server", "uid", p.uid, "pid", p.pid)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// ServeHTTP answers one request: 403 for a caller that is not allowed,
// else the API. It is exported to satisfy http.Handler; use Serve, which
// identifies each connection's caller: a request that did not come
// through Serve has no known caller and is always refused.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := r.Context().Value(peerKey{}).(peer)
	switch {
	case !ok || p.err != nil:
		wire.WriteError(w, http.StatusForbidden, wire.CodePermissionDenied, "admin: permission denied: the caller's credentials could not be read")
	case !p.allowed:
		wire.WriteError(w, http.StatusForbidden, wire.CodePermissionDenied,
			fmt.Sprintf("admin: permission denied: uid %d may not administer this server", p.uid))
	default:
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
		defer cancel()
		s.mux.ServeHTTP(w, r.WithContext(ctx))
	}
}

// timedOut reports whether the request ran out of time (see
// Config.RequestTimeout), and logs it: its failure says so, not
// "internal error".
func (s *Server) timedOut(r *http.Request, err error) bool {
	if !errors.Is(r.Context().Err(), context.DeadlineExceeded) {
		return false
	}
	s.log.Error("admin: request timed out", "method", r.Method, "path", r.URL.Path, "timeout", s.cfg.RequestTimeout, "err", err)
	return true
}

// timeoutMessage is the error of a request that ran out of time.
func (s *Server) timeoutMessage() string {
	return fmt.Sprintf("admin: the server's stores did not answer within %s; is its database reachable?", s.cfg.RequestTimeout)
}

// ListenUnix listens on a unix socket at path with file mode 0600, so that
// only the server's own uid (and root) can connect. A stale socket left by
// a server that is gone is removed first; a live socket, or any other kind
// of file at path, is an error. Closing the listener removes the socket.
//
// Between bind and chmod the socket briefly has the permissions the process
// umask gives; keep it in a directory only the server can write to. The uid
// check in [Server] does not depend on the file mode.
func ListenUnix(path string) (net.Listener, error) {
	lis, err := unixsock.Listen(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return lis, nil
}
