package sds

import (
	"context"
	"errors"
	"io"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// receive reads the requests of stream into the returned channel until
// the stream ends; the error channel then gets nil (the client closed its
// side or went away) or the error. It stops when done closes.
func receive[Req any](stream grpc.ServerStream, done <-chan struct{}) (<-chan *Req, <-chan error) {
	reqs := make(chan *Req)
	errc := make(chan error, 1)
	go func() {
		for {
			req := new(Req)
			if err := stream.RecvMsg(req); err != nil {
				if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled || stream.Context().Err() != nil {
					err = nil
				}
				errc <- err
				return
			}
			select {
			case reqs <- req:
			case <-done:
				return
			}
		}
	}()
	return reqs, errc
}

// streamState is what a stream shares of both protocols: its caller's
// subscription, and its version and nonce counters.
type streamState struct {
	caller  endpoint.Caller
	sub     endpoint.Subscription
	version uint64
	nonce   uint64
}

// open identifies the caller of stream and subscribes to its view.
func (s *Server) open(ctx context.Context, method string) (*streamState, error) {
	caller, err := endpoint.CallerFromContext(ctx)
	if err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	sub, err := s.cfg.Handler.Subscribe(ctx, caller)
	if err != nil {
		return nil, endpoint.ErrorStatus(s.log, method, caller, err)
	}
	return &streamState{caller: caller, sub: sub}, nil
}

// next returns the next version and nonce.
func (st *streamState) next() (version, nonce string) {
	st.version++
	st.nonce++
	return strconv.FormatUint(st.version, 10), strconv.FormatUint(st.nonce, 10)
}

// snapshot returns the caller's current view, or the error to end the
// stream with when it has none.
func (st *streamState) snapshot() (*endpoint.Snapshot, error) {
	snap := st.sub.Snapshot()
	if snap == nil {
		return nil, endpoint.ErrNoIdentity
	}
	return snap, nil
}
