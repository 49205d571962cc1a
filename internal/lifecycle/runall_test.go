package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// untilDone is a part that runs until its ctx is done, then returns ret(ctx).
func untilDone(ret func(ctx context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		<-ctx.Done()
		return ret(ctx)
	}
}

func TestRunAll(t *testing.T) {
	errA := errors.New("a failed")
	errB := errors.New("b failed")
	ctxErr := func(ctx context.Context) error { return ctx.Err() }
	tests := []struct {
		name  string
		parts []func(context.Context) error
		want  []error // nil: RunAll returns nil
	}{
		{name: "no parts"},
		{
			name:  "parts that end without failing",
			parts: []func(context.Context) error{func(context.Context) error { return nil }, func(context.Context) error { return nil }},
		},
		{
			name:  "a failure stops the others, which stopped as asked",
			parts: []func(context.Context) error{untilDone(ctxErr), func(context.Context) error { return errA }, untilDone(ctxErr)},
			want:  []error{errA},
		},
		{
			name: "an error wrapping the context's once it is done is no failure",
			parts: []func(context.Context) error{
				untilDone(func(ctx context.Context) error { return fmt.Errorf("serving: %w", ctx.Err()) }),
				func(context.Context) error { return errA },
			},
			want: []error{errA},
		},
		{
			name: "a part that fails once stopped fails",
			parts: []func(context.Context) error{
				untilDone(func(context.Context) error { return errB }),
				func(context.Context) error { return errA },
			},
			want: []error{errB, errA},
		},
		{
			name: "context.Canceled of its own, before the context is done, is a failure",
			parts: []func(context.Context) error{
				func(context.Context) error { return context.Canceled },
				untilDone(ctxErr),
			},
			want: []error{context.Canceled},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer leaktest.Check(t)()
			err := lifecycle.RunAll(t.Context(), tt.parts...)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, e := range tt.want {
				require.ErrorIs(t, err, e)
			}
			assert.Equal(t, errors.Join(tt.want...).Error(), err.Error(), "the failures in the order of the parts")
		})
	}
}

// Property: when the caller's ctx ends, every part is asked to stop, and
// those that return the context's error are no failure.
func TestRunAllStopsWithCaller(t *testing.T) {
	defer leaktest.Check(t)()
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{}, 2)
	part := func(ctx context.Context) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	ran := make(chan error, 1)
	go func() { ran <- lifecycle.RunAll(ctx, part, part) }()
	<-started
	<-started
	cancel()
	require.NoError(t, <-ran)
}
