package nodeserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// A peerError is a failure the server tells the peer about: a code and a
// message fit for it, made of constants and of what the peer itself sent.
// The handlers wrap one around the details, which go to the log only:
//
//	fmt.Errorf("%w: agent %s", errBanned, id)
//
// Any other error is answered Internal with a generic message; see
// peerStatus.
type peerError struct {
	code  codes.Code
	msg   string     // what the peer is told, without the "nodeserver: " prefix
	level slog.Level // how loudly the server logs it
}

func (e *peerError) Error() string { return e.msg }

// Failures the server tells the peer about in fixed words.
var (
	errNoSVID      = &peerError{codes.Unauthenticated, "this call needs an agent SVID", slog.LevelWarn}
	errForeignSVID = &peerError{codes.Unauthenticated, "the client certificate is not an SVID of this trust domain", slog.LevelWarn}
	errExpired     = &peerError{codes.Unauthenticated, "the agent SVID has expired", slog.LevelWarn}

	errNotAttested   = &peerError{codes.PermissionDenied, "the agent is not attested (evicted?)", slog.LevelWarn}
	errEvicted       = &peerError{codes.PermissionDenied, "the agent was evicted", slog.LevelWarn}
	errBanned        = &peerError{codes.PermissionDenied, "the agent is banned", slog.LevelWarn}
	errSuperseded    = &peerError{codes.PermissionDenied, "the agent SVID is no longer current", slog.LevelWarn}
	errNotAuthorized = &peerError{codes.PermissionDenied, "the entry is not authorized for this agent", slog.LevelWarn}
	// errNoReattest refuses a node attesting again under an agent ID that
	// is in use, when the agent's node attestor does not allow it.
	errNoReattest = &peerError{codes.PermissionDenied, "the agent is attested already, and its node attestor does not allow attesting again: " +
		"the agent renews with its SVID; evict it to attest its ID again", slog.LevelWarn}
	// errAttestRefused says no more than that: why a node attestor
	// refused (an unknown join token, an expired one, a certificate that
	// does not chain) would help whoever probes it.
	errAttestRefused = &peerError{codes.PermissionDenied, "node attestation refused", slog.LevelWarn}
	// errAttestorFault is a node attestor's answer the server cannot use
	// (an agent ID outside the trust domain): the agent is told no more,
	// the log is loud.
	errAttestorFault = &peerError{codes.PermissionDenied, "node attestation refused", slog.LevelError}
	errAttestTimeout = &peerError{codes.DeadlineExceeded, "the agent did not complete attestation in time", slog.LevelWarn}

	// errUnavailable is what the server cannot do now (a store failed, no
	// CA is active); the agent tries again, here or on another server.
	errUnavailable  = &peerError{codes.Unavailable, "the server cannot answer now; try again later", slog.LevelWarn}
	errShuttingDown = &peerError{codes.Unavailable, "the server is shutting down", slog.LevelDebug}
	// errNoWIT answers an agent asking for a WIT-SVID of a server that
	// does not issue them: Unimplemented, as a server without the method
	// answers, so that agents of either treat both alike and do not retry.
	errNoWIT  = &peerError{codes.Unimplemented, "this server does not issue WIT-SVIDs", slog.LevelDebug}
	errStream = &peerError{codes.Unavailable, "the stream failed", slog.LevelDebug}
	// errStreamSuperseded ends an entry stream whose SVID was superseded:
	// Aborted, not a refusal, since the agent normally holds the SVID that
	// superseded it and reconnects with that; a caller without it is
	// refused then.
	errStreamSuperseded = &peerError{codes.Aborted, "the agent SVID this stream was opened with was superseded; reconnect with the current one", slog.LevelInfo}
)

// invalidf returns the error of a malformed request. Its message goes to
// the peer as it is: build it from the request and constants only, never
// from the server's own state or errors.
func invalidf(format string, args ...any) error {
	return &peerError{codes.InvalidArgument, fmt.Sprintf(format, args...), slog.LevelDebug}
}

// unavailable wraps the failure of something the server depends on (a
// store, the CA) as errUnavailable: the details stay in the log.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %w", errUnavailable, what, err)
}

// peerStatus returns the code and message the peer gets for err, which a
// handler of method returned, and logs what the peer is not told. It is
// the one place where the server's errors become gRPC codes. ctx is the
// call's: once it is done, the peer has gone or given up and hears of no
// detail. msg carries no "nodeserver: " prefix.
func peerStatus(ctx context.Context, log *slog.Logger, method string, err error) (code codes.Code, msg string) {
	var pe *peerError
	log = log.With("method", method)
	if addr := peerAddr(ctx); addr != "" {
		log = log.With("peer", addr)
	}
	if ae, ok := errors.AsType[*attestorError](err); ok {
		log = log.With("attestor", ae.attestor)
	}
	switch {
	case ctx.Err() != nil:
		log.Debug("call ended by the peer", "err", err)
		return status.FromContextError(ctx.Err()).Code(), ctx.Err().Error()
	case errors.As(err, &pe):
		if pe.code == codes.InvalidArgument {
			log.Debug("invalid request", "err", err)
		} else {
			log.Log(ctx, pe.level, "request refused", "code", pe.code.String(), "err", err)
		}
		return pe.code, pe.msg
	case errors.Is(err, context.Canceled):
		return codes.Canceled, context.Canceled.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, context.DeadlineExceeded.Error()
	}
	log.Error("request failed", "err", err)
	return codes.Internal, "internal error"
}

// peerAddr returns the address of the call's peer, or "".
func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// An attestorError is the failure of an attestation through a known node
// attestor: the log names the attestor besides the peer.
type attestorError struct {
	attestor string
	err      error
}

func (e *attestorError) Error() string { return e.err.Error() }
func (e *attestorError) Unwrap() error { return e.err }

// grpcError returns the status error the peer gets for err; nil for nil.
func grpcError(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	code, msg := peerStatus(ctx, log, method, err)
	return status.Error(code, "nodeserver: "+msg)
}

// methodName returns the method of a full gRPC method name
// ("/spiffekit.node.v1.Node/Attest" gives "Attest").
func methodName(full string) string {
	return full[strings.LastIndexByte(full, '/')+1:]
}

// streamErrors maps the errors of stream handlers with grpcError, and
// tells the Observer of the call.
func (s *Server) streamErrors(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	method := methodName(info.FullMethod)
	start := s.observeStart()
	err := grpcError(ss.Context(), s.log, method, handler(srv, ss))
	if o := s.cfg.Observer; o != nil {
		o.RPC(method, status.Code(err), time.Since(start))
	}
	return err
}

// unaryErrors maps the errors of unary handlers with grpcError, and tells
// the Observer of the call.
func (s *Server) unaryErrors(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	method := methodName(info.FullMethod)
	start := s.observeStart()
	resp, err := handler(ctx, req)
	if err != nil {
		resp, err = nil, grpcError(ctx, s.log, method, err)
	}
	if o := s.cfg.Observer; o != nil {
		o.RPC(method, status.Code(err), time.Since(start))
	}
	return resp, err
}
