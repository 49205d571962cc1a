package endpoint

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var (
	// ErrNoIdentity reports that a caller has no identity, or not the one
	// it asked for. A Handler wraps it; the server answers PermissionDenied
	// (WAPI rules 10-13, E4), which clients retry after a backoff.
	ErrNoIdentity = errors.New("endpoint: no identity issued")

	// ErrUnavailable reports that a Handler cannot answer now (for
	// example, its CA is not ready). The server answers Unavailable, which
	// clients retry after a backoff.
	ErrUnavailable = errors.New("endpoint: unavailable")

	// ErrInvalidRequest reports a request a Handler refuses to serve as
	// asked. The server answers InvalidArgument, which clients do not
	// retry, and sends the error's message to the caller: wrap it only
	// around text fit for an unauthenticated peer.
	ErrInvalidRequest = errors.New("endpoint: invalid request")

	// ErrUnimplemented reports that a Handler does not offer what was asked
	// for: a WIT-SVID from a [WITHandler] whose issuing side does not sign
	// them. The server answers Unimplemented, which clients do not retry
	// (WIT rule 17).
	ErrUnimplemented = errors.New("endpoint: not offered")
)

// Errors the server raises itself, mapped in grpcError.
var (
	errMissingHeader = errors.New("security header missing from request")
	errShuttingDown  = errors.New("endpoint: server is shutting down")
	errUnidentified  = errors.New("endpoint: could not identify the caller")
)

// grpcError turns err into the status sent to the caller. It is the one
// place where errors become gRPC codes; details of unexpected errors go to
// the log only.
func grpcError(log *slog.Logger, method string, caller Caller, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errMissingHeader):
		// WE rule 6: the message SPIRE uses, for recognisability.
		return status.Error(codes.InvalidArgument, errMissingHeader.Error())
	case errors.Is(err, ErrInvalidRequest):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrUnimplemented):
		log.Debug("not offered", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.Unimplemented, method+" is not offered")
	case errors.Is(err, ErrNoIdentity):
		log.Debug("caller has no identity", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.PermissionDenied, "no identity issued")
	case errors.Is(err, errShuttingDown):
		return status.Error(codes.Unavailable, "workload API server is shutting down")
	case errors.Is(err, errUnidentified):
		log.Warn("caller identification failed", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.Unavailable, "could not identify the caller")
	case errors.Is(err, ErrUnavailable):
		log.Warn("handler unavailable", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.Unavailable, "workload API is unavailable")
	case errors.Is(err, context.Canceled):
		// The wrapped text may name what the handler was doing; the
		// caller learns only the code.
		log.Debug("request canceled", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.Canceled, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		log.Debug("request deadline exceeded", "method", method, callerAttrs(caller), "err", err)
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	log.Error("request failed", "method", method, callerAttrs(caller), "err", err)
	return status.Error(codes.Internal, "internal error")
}

func callerAttrs(c Caller) slog.Attr {
	return slog.Group("caller", "pid", c.PID, "uid", c.UID, "gid", c.GID, "addr", addrString(c))
}
