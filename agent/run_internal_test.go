package agent

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRunAllJoinsEveryError(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	err := runAll(t.Context(),
		func(context.Context) error { return first },
		func(ctx context.Context) error { <-ctx.Done(); return second }, // fails as it stops
		func(ctx context.Context) error { <-ctx.Done(); return nil },    // stops quietly
	)
	require.ErrorIs(t, err, first)
	require.ErrorIs(t, err, second, "an error returned while stopping is not dropped")
	assert.Len(t, err.(interface{ Unwrap() []error }).Unwrap(), 2, "the part that stopped quietly adds nothing")

	// Parts that end with ctx and fail in nothing: nil.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.NoError(t, runAll(ctx, func(ctx context.Context) error { <-ctx.Done(); return nil }))
}
