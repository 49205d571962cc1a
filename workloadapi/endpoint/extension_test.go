package endpoint_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// TestExtensionOutsideServer: a context no Server serves has no caller
// and never stops; errors map as on the Workload API.
func TestExtensionOutsideServer(t *testing.T) {
	caller, err := endpoint.CallerFromContext(context.Background())
	require.False(t, caller.HasCredentials())
	requireCode(t, codes.Unavailable, endpoint.ErrorStatus(nil, "Method", caller, err))
	require.Nil(t, endpoint.Stopping(context.Background()))
	require.NoError(t, endpoint.ErrorStatus(nil, "Method", caller, nil))
	requireCode(t, codes.PermissionDenied, endpoint.ErrorStatus(nil, "Method", caller, endpoint.ErrNoIdentity))
	requireCode(t, codes.Unavailable, endpoint.ErrorStatus(nil, "Method", caller, endpoint.ErrShuttingDown))
	requireCode(t, codes.Internal, endpoint.ErrorStatus(nil, "Method", caller, errors.New("boom")))
}
