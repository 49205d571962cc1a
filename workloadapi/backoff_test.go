package workloadapi

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestDefaultBackoff(t *testing.T) {
	b := defaultBackoffStrategy{}.NewBackoff()
	base := defaultInitialBackoff
	for range 20 {
		d := b.Next()
		assert.GreaterOrEqual(t, d, base/2, "jitter keeps at least half the base")
		assert.LessOrEqual(t, d, base)
		base = min(2*base, defaultMaxBackoff)
	}
	// Capped at the maximum.
	assert.LessOrEqual(t, b.Next(), defaultMaxBackoff)
	assert.GreaterOrEqual(t, b.Next(), defaultMaxBackoff/2)
	b.Reset()
	assert.LessOrEqual(t, b.Next(), defaultInitialBackoff)
}

// failingOpen is a stream opener that always fails with Unavailable; it
// lets the watch loop run without sockets inside a synctest bubble.
func failingOpen(calls *[]time.Time) func(context.Context, *struct{}, ...grpc.CallOption) (grpc.ServerStreamingClient[struct{}], error) {
	return func(context.Context, *struct{}, ...grpc.CallOption) (grpc.ServerStreamingClient[struct{}], error) {
		*calls = append(*calls, time.Now())
		return nil, status.Error(codes.Unavailable, "down")
	}
}

func TestWatchBackoffTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &Client{log: discardLogger(), backoff: defaultBackoffStrategy{}}
		var calls []time.Time
		var errs int
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			done <- watchStream(ctx, c, "test", failingOpen(&calls), &struct{}{},
				func(*struct{}) (struct{}, error) { return struct{}{}, nil },
				func(struct{}) {}, func(error) { errs++ })
		}()
		time.Sleep(10 * time.Minute)
		synctest.Wait()
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)

		require.Greater(t, len(calls), 10)
		assert.Equal(t, len(calls), errs)
		// Delays grow exponentially within the jitter bounds, then cap.
		base := defaultInitialBackoff
		for i := 1; i < len(calls); i++ {
			d := calls[i].Sub(calls[i-1])
			assert.GreaterOrEqual(t, d, base/2, "retry %d", i)
			assert.LessOrEqual(t, d, base, "retry %d", i)
			base = min(2*base, defaultMaxBackoff)
		}
	})
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
