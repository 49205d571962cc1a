package endpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// MaxRequestSize bounds the size of one request message in bytes. The
// largest legitimate one is a ValidateJWTSVID request carrying a token of at
// most jwtsvid.MaxTokenLength bytes.
const MaxRequestSize = 64 << 10

// MaxAudiences bounds the number of audience values in a FetchJWTSVID
// request.
const MaxAudiences = 64

// Config configures New. The struct is copied.
type Config struct {
	// Handler decides what each caller gets. Required.
	Handler Handler

	// Logger receives request failures (Internal errors in full, denied
	// callers at debug level). Nil discards the output.
	Logger *slog.Logger

	// WIT turns on the optional WIT-SVID profile: FetchWITSVID and
	// FetchWITBundles serve the WIT material of each Snapshot. When false
	// (the default) both answer Unimplemented, as WIT rule 17 requires of a
	// server without the profile.
	WIT bool

	// Register, when set, is called with each gRPC server Serve builds, to
	// add further services on the same endpoint, such as health or
	// reflection (WE rule 7: extensions are separate services). The
	// security header is checked only for Workload API methods. Their RPCs
	// learn the caller with CallerFromContext and the end of Serve with
	// Stopping.
	Register func(grpc.ServiceRegistrar)

	// MaxRequestSize bounds the size of one request message in bytes, on
	// the services added with Register. Zero means MaxRequestSize, which
	// fits the Workload API; a service whose requests are larger (an
	// Envoy's SDS request carries its node description) raises it. The
	// Workload API's own requests are held to MaxRequestSize whatever it
	// is (ResourceExhausted).
	MaxRequestSize int

	// ShutdownGrace bounds how long Serve waits, once its ctx is done, for
	// clients to go away after their RPCs have ended; then it closes the
	// remaining connections. Zero means DefaultShutdownGrace.
	ShutdownGrace time.Duration

	// Observer, when not nil, is told of every Workload API call (see
	// Observer). Nil costs nothing.
	Observer Observer

	// RateLimit, when not nil, bounds how often each caller (each uid)
	// may call the Workload API; see RateLimit. The limit holds across
	// every listener the Server serves. Nil sets no limit and costs
	// nothing.
	RateLimit *RateLimit
}

// DefaultShutdownGrace is the default of Config.ShutdownGrace.
const DefaultShutdownGrace = 5 * time.Second

// Server serves the SPIFFE Workload API. It is safe for concurrent use;
// one Server may serve several listeners at once.
type Server struct {
	cfg   Config
	log   *slog.Logger
	limit *limiter // nil without Config.RateLimit
}

// New returns a server for cfg. It fails when cfg.Handler is nil or
// cfg.RateLimit is invalid.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("endpoint: handler is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	limit, err := newLimiter(cfg.RateLimit, log)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: log, limit: limit}, nil
}

func (s *Server) maxRequestSize() int {
	if s.cfg.MaxRequestSize > 0 {
		return s.cfg.MaxRequestSize
	}
	return MaxRequestSize
}

// Serve accepts Workload API connections on lis until ctx is done, then
// stops: it ends every watch stream with Unavailable, cancels the contexts
// of unary calls, waits for every RPC to return, closes lis and returns nil.
// It returns early, with the error, when lis fails. The caller owns the
// goroutine that runs Serve.
//
// On a unix socket (see ListenUnix) each caller is identified by its kernel
// credentials; on TCP only by its address, which WE rule 2 allows only on
// loopback or an equally trusted network.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if ctx.Err() != nil {
		lis.Close()
		return nil
	}
	opts := append([]grpc.ServerOption{
		grpc.Creds(peerCreds{}),
		grpc.ForceServerCodecV2(newCodec()),
		grpc.MaxRecvMsgSize(s.maxRequestSize()),
		grpc.WaitForHandlers(true),
	}, observerOptions(s.cfg.Observer)...)
	opts = append(opts, s.limit.options()...) // after the observer's, which sees refused calls
	if s.cfg.Register != nil {
		// Only registered services need it: the Workload API's own see
		// Serve's ctx through their service.
		opts = append(opts, stoppingOptions(ctx.Done())...)
	}
	if s.maxRequestSize() > MaxRequestSize {
		opts = append(opts, wapiSizeOptions()...)
	}
	gs := grpc.NewServer(opts...)
	workloadpb.RegisterWorkloadAPIServer(gs, newService(ctx, s))
	if s.cfg.Register != nil {
		s.cfg.Register(gs)
	}
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		gs.Stop()
		if err == nil {
			return nil
		}
		return fmt.Errorf("endpoint: serve: %w", err)
	case <-ctx.Done():
		// Watch streams see ctx too and end; GracefulStop then waits for
		// the last handler (WaitForHandlers) and for clients to close their
		// connections. A client that never does must not keep Serve from
		// returning: after the grace period, Stop closes every connection.
		stopped := make(chan struct{})
		go func() {
			gs.GracefulStop()
			close(stopped)
		}()
		grace := s.cfg.ShutdownGrace
		if grace <= 0 {
			grace = DefaultShutdownGrace
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-stopped:
		case <-timer.C:
			s.log.Warn("workload API clients did not disconnect in time; closing their connections", "grace", grace)
			gs.Stop()
			<-stopped
		}
		<-errc
		return nil
	}
}
