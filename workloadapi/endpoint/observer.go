package endpoint

import (
	"context"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/workloadpb"
)

// An Observer is told of the Workload API calls a Server answers, for
// metrics: how long callers wait for their answer, with which status, and
// how many watch streams are open. Set it in Config.Observer; without one
// the server does no accounting at all.
//
// method is the Workload API method's name, such as "FetchX509SVID" or
// "FetchJWTSVID"; services added through Config.Register are not
// observed. code is the status the caller got.
//
// The server calls the methods on the goroutine of the call, concurrently
// for concurrent calls. They must be safe for concurrent use, return
// quickly and never block: a slow Observer slows every caller.
type Observer interface {
	// Answered follows each call once it has its answer: a unary call when
	// it returns; a watch stream when it sends its first response (code
	// OK), or, when it ends without one, when it ends. d is the time from
	// the start of the call.
	Answered(method string, code codes.Code, d time.Duration)

	// StreamOpened follows the start of each watch stream, before any
	// check.
	StreamOpened(method string)

	// StreamClosed follows the end of each watch stream, with the status
	// it ended with: OK when the caller left.
	StreamClosed(method string, code codes.Code)
}

// wapiPrefix starts the full gRPC name of every Workload API method.
const wapiPrefix = "/" + workloadpb.ServiceName + "/"

// observerOptions returns the interceptors that tell o of the Workload API
// calls; none when o is nil.
func observerOptions(o Observer) []grpc.ServerOption {
	if o == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unaryObserver(o)), grpc.ChainStreamInterceptor(streamObserver(o))}
}

// unaryObserver tells o of each unary Workload API call once it returns.
func unaryObserver(o Observer) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		method, ok := strings.CutPrefix(info.FullMethod, wapiPrefix)
		if !ok {
			return handler(ctx, req)
		}
		start := time.Now()
		resp, err := handler(ctx, req)
		o.Answered(method, status.Code(err), time.Since(start))
		return resp, err
	}
}

// streamObserver tells o of each Workload API stream: opened, answered
// (at its first response, or its end), closed.
func streamObserver(o Observer) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		method, ok := strings.CutPrefix(info.FullMethod, wapiPrefix)
		if !ok {
			return handler(srv, ss)
		}
		o.StreamOpened(method)
		obs := &observedStream{ServerStream: ss, o: o, method: method, start: time.Now()}
		err := handler(srv, obs)
		code := status.Code(err)
		if !obs.answered {
			o.Answered(method, code, time.Since(obs.start))
		}
		o.StreamClosed(method, code)
		return err
	}
}

// observedStream tells its Observer when the first response goes out.
// Only the handler's goroutine sends, so answered needs no lock.
type observedStream struct {
	grpc.ServerStream
	o        Observer
	method   string
	start    time.Time
	answered bool
}

// SendMsg sends m and, the first time it succeeds, reports the answer.
func (s *observedStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil && !s.answered {
		s.answered = true
		s.o.Answered(s.method, codes.OK, time.Since(s.start))
	}
	return err
}
