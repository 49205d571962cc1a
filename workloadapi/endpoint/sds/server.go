package sds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretv3 "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// The default resource names, SPIRE's.
const (
	DefaultSVIDName       = "default"
	DefaultBundleName     = "ROOTCA"
	DefaultAllBundlesName = "ALL"
)

// MaxRequestSize is the request size, in bytes, that an endpoint serving
// SDS should accept (endpoint.Config.MaxRequestSize): an Envoy's discovery
// request carries a description of its node, with every extension it was
// built with, several times what the Workload API allows.
const MaxRequestSize = 1 << 20

// MaxResourceNames bounds the resource names of one request, and those a
// delta stream subscribes to; a request over it gets InvalidArgument.
const MaxResourceNames = 1024

// Config configures New. The struct is copied.
type Config struct {
	// Handler decides what each caller gets: the handler of the Workload
	// API served on the same endpoint. Required.
	Handler endpoint.Handler

	// Logger receives the protocol's events (NACKs at warning level,
	// requests and responses at debug level). Nil discards them.
	Logger *slog.Logger

	// DefaultSVIDName, DefaultBundleName and DefaultAllBundlesName are the
	// names of the caller's default X509-SVID, of its own trust domain's
	// bundle and of every bundle it trusts as one SPIFFE validator. Empty
	// means DefaultSVIDName ("default"), DefaultBundleName ("ROOTCA") and
	// DefaultAllBundlesName ("ALL"). They must differ from each other.
	DefaultSVIDName, DefaultBundleName, DefaultAllBundlesName string

	// DisableSPIFFECertValidation sends bundles as trusted_ca even to an
	// Envoy that has the SPIFFE certificate validator, unless its node
	// metadata says otherwise.
	DisableSPIFFECertValidation bool

	// Observer, when not nil, is told of every SDS call as an
	// endpoint.Observer is of Workload API calls, under the method names
	// FetchSecrets, StreamSecrets and DeltaSecrets: a stream is answered
	// at its first response. Nil costs nothing.
	Observer endpoint.Observer
}

// Server is the Secret Discovery Service. It is safe for concurrent use.
// Register adds it to the gRPC server of an endpoint.Server (through
// endpoint.Config.Register): it serves only there, where the endpoint
// identifies each caller.
type Server struct {
	secretv3.UnimplementedSecretDiscoveryServiceServer
	cfg   Config
	log   *slog.Logger
	names names
	views viewCache
}

var _ secretv3.SecretDiscoveryServiceServer = (*Server)(nil)

// New returns a server for cfg. It fails when cfg.Handler is nil or two of
// the default names are the same.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("sds: handler is required")
	}
	n := names{svid: cfg.DefaultSVIDName, bundle: cfg.DefaultBundleName, all: cfg.DefaultAllBundlesName}
	if n.svid == "" {
		n.svid = DefaultSVIDName
	}
	if n.bundle == "" {
		n.bundle = DefaultBundleName
	}
	if n.all == "" {
		n.all = DefaultAllBundlesName
	}
	if n.svid == n.bundle || n.svid == n.all || n.bundle == n.all {
		return nil, fmt.Errorf("sds: the default SVID, bundle and all-bundles names must differ, not %q, %q and %q", n.svid, n.bundle, n.all)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log, names: n}, nil
}

// Register adds the Secret Discovery Service to r, an endpoint's gRPC
// server: pass it as endpoint.Config.Register.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	secretv3.RegisterSecretDiscoveryServiceServer(r, s)
}

// FetchSecrets answers one request with the resources it names, without
// version or nonce.
func (s *Server) FetchSecrets(ctx context.Context, req *discoveryv3.DiscoveryRequest) (resp *discoveryv3.DiscoveryResponse, err error) {
	const method = "FetchSecrets"
	if o := s.cfg.Observer; o != nil {
		start := time.Now()
		defer func() { o.Answered(method, status.Code(err), time.Since(start)) }()
	}
	return s.fetchSecrets(ctx, req)
}

func (s *Server) fetchSecrets(ctx context.Context, req *discoveryv3.DiscoveryRequest) (*discoveryv3.DiscoveryResponse, error) {
	const method = "FetchSecrets"
	caller, err := endpoint.CallerFromContext(ctx)
	if err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	if err := checkRequest(req.GetTypeUrl(), req.GetResourceNames()); err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	sub, err := s.cfg.Handler.Subscribe(ctx, caller)
	if err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	snap := sub.Snapshot()
	sub.Close()
	if snap == nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, endpoint.ErrNoIdentity)
	}
	res, err := s.build(snap, req.GetResourceNames(), s.validator(req.GetNode()))
	if err == nil {
		err = res.strict()
	}
	if err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	s.log.Debug("SDS fetch", "names", req.GetResourceNames(), "count", len(res.found))
	return &discoveryv3.DiscoveryResponse{TypeUrl: SecretTypeURL, Resources: res.anys()}, nil
}

// checkRequest checks the parts of a request every method shares.
func checkRequest(typeURL string, names []string) error {
	if typeURL != "" && typeURL != SecretTypeURL {
		return fmt.Errorf("%w: type_url %q is not %q", endpoint.ErrInvalidRequest, truncate(typeURL), SecretTypeURL)
	}
	if len(names) > MaxResourceNames {
		return fmt.Errorf("%w: %d resource names, more than %d", endpoint.ErrInvalidRequest, len(names), MaxResourceNames)
	}
	return nil
}

// truncate shortens what a caller sent before it is quoted back.
func truncate(s string) string {
	const max = 128
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// observe runs a stream of method through serve, telling the Observer.
func observe[Req, Resp any](o endpoint.Observer, method string, stream grpc.BidiStreamingServer[Req, Resp],
	serve func(grpc.BidiStreamingServer[Req, Resp]) error) error {
	if o == nil {
		return serve(stream)
	}
	o.StreamOpened(method)
	obs := &observedStream[Req, Resp]{BidiStreamingServer: stream, o: o, method: method, start: time.Now()}
	err := serve(obs)
	code := status.Code(err)
	if !obs.answered {
		o.Answered(method, code, time.Since(obs.start))
	}
	o.StreamClosed(method, code)
	return err
}

// observedStream tells its Observer of its first response.
type observedStream[Req, Resp any] struct {
	grpc.BidiStreamingServer[Req, Resp]
	o        endpoint.Observer
	method   string
	start    time.Time
	answered bool
}

func (s *observedStream[Req, Resp]) Send(m *Resp) error {
	err := s.BidiStreamingServer.Send(m)
	if err == nil && !s.answered {
		s.answered = true
		s.o.Answered(s.method, codes.OK, time.Since(s.start))
	}
	return err
}
