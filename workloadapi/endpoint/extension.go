package endpoint

import (
	"context"
	"log/slog"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// This file is what a service added with Config.Register shares with the
// Workload API: the caller as the server identified it, the one mapping of
// errors to statuses, and the end of Serve.

// CallerFromContext returns the caller of an RPC served by a Server, on the
// Workload API or on a service added with Config.Register, as the server
// identified it when it accepted the connection. Its error is one
// ErrorStatus maps: a caller that could not be identified gets
// Unavailable, one whose process was gone before accept PermissionDenied.
func CallerFromContext(ctx context.Context) (Caller, error) {
	return callerFromContext(ctx)
}

// ErrorStatus turns err, from a Handler or CallerFromContext, into the gRPC
// status the Workload API answers with (see Handler for the mapping), and
// logs it as the Workload API does, naming method and caller. It returns
// nil for a nil err.
func ErrorStatus(log *slog.Logger, method string, caller Caller, err error) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return grpcError(log, method, caller, err)
}

// ErrShuttingDown is the error a service added with Config.Register returns
// (through ErrorStatus, which answers Unavailable) when it ends a stream
// because Serve is stopping; see Stopping.
var ErrShuttingDown = errShuttingDown

// Stopping returns a channel that is closed when the Serve call serving the
// RPC whose context is ctx stops, so that a long-lived stream of a service
// added with Config.Register ends then, as Workload API streams do, rather
// than holding Serve for its shutdown grace. It returns nil (never ready)
// for a context that no Server serves.
func Stopping(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(stoppingKey{}).(<-chan struct{})
	return ch
}

type stoppingKey struct{}

// stoppingOptions gives every RPC of a Serve call the channel Stopping
// returns.
func stoppingOptions(stopping <-chan struct{}) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			return handler(context.WithValue(ctx, stoppingKey{}, stopping), req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			return handler(srv, &stoppingStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), stoppingKey{}, stopping)})
		}),
	}
}

type stoppingStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stoppingStream) Context() context.Context { return s.ctx }

// wapiSizeOptions hold Workload API requests to MaxRequestSize when
// Config.MaxRequestSize lets larger messages through for the services
// added with Config.Register.
func wapiSizeOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if strings.HasPrefix(info.FullMethod, wapiPrefix) {
				if err := checkSize(req); err != nil {
					return nil, err
				}
			}
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if strings.HasPrefix(info.FullMethod, wapiPrefix) {
				ss = sizedStream{ss}
			}
			return handler(srv, ss)
		}),
	}
}

// sizedStream refuses a request larger than MaxRequestSize.
type sizedStream struct{ grpc.ServerStream }

func (s sizedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return checkSize(m)
}

func checkSize(m any) error {
	if pm, ok := m.(proto.Message); ok {
		if n := proto.Size(pm); n > MaxRequestSize {
			return status.Errorf(codes.ResourceExhausted, "request of %d bytes, larger than the %d the Workload API takes", n, MaxRequestSize)
		}
	}
	return nil
}
