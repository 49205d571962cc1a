package endpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGRPCErrorHidesDetails checks that what a handler was doing when it
// failed reaches the log, never the caller: only ErrInvalidRequest's text,
// which the handler wrote for the caller, is sent.
func TestGRPCErrorHidesDetails(t *testing.T) {
	const secret = "dial tcp 10.0.0.7:5432: password authentication failed for user spire"
	caller := Caller{PID: 42, UID: 1000, GID: 1000}
	for _, tc := range []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"canceled", fmt.Errorf("querying %s: %w", secret, context.Canceled), codes.Canceled, "request canceled"},
		{"deadline", fmt.Errorf("querying %s: %w", secret, context.DeadlineExceeded), codes.DeadlineExceeded, "deadline exceeded"},
		{"unavailable", fmt.Errorf("%w: %s", ErrUnavailable, secret), codes.Unavailable, "workload API is unavailable"},
		{"no identity", fmt.Errorf("%w: %s", ErrNoIdentity, secret), codes.PermissionDenied, "no identity issued"},
		{"unidentified", fmt.Errorf("%w: %s", errUnidentified, secret), codes.Unavailable, "could not identify the caller"},
		{"unexpected", errors.New(secret), codes.Internal, "internal error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logged bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			st, ok := status.FromError(grpcError(log, "/Fetch", caller, tc.err))
			assert.True(t, ok)
			assert.Equal(t, tc.code, st.Code())
			assert.Equal(t, tc.msg, st.Message())
			assert.NotContains(t, st.Message(), "password")
			assert.Contains(t, logged.String(), "password authentication failed", "the details go to the log")
		})
	}

	// ErrInvalidRequest is the one class whose text is meant for the caller.
	st, _ := status.FromError(grpcError(slog.New(slog.DiscardHandler), "/Fetch", caller, fmt.Errorf("%w: audience is empty", ErrInvalidRequest)))
	assert.Equal(t, codes.InvalidArgument, st.Code())
	assert.Contains(t, st.Message(), "audience is empty")
}
