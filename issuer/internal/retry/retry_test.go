package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

func TestSchedules(t *testing.T) {
	for n := range 10 {
		require.Equal(t, Interval, Local(n))
	}
	// Exponential from Interval to MaxInterval, each jittered over its
	// upper half.
	for failures, want := range map[int]time.Duration{0: Interval, 1: Interval, 2: 2 * Interval, 3: 4 * Interval, 5: 16 * Interval, 6: MaxInterval, 60: MaxInterval} {
		for range 20 {
			d := Remote(failures)
			require.GreaterOrEqual(t, d, want/2, "failures %d", failures)
			require.LessOrEqual(t, d, want, "failures %d", failures)
		}
	}
}

// One line for a batch: the count, the soonest retry and the first
// failure; none when nothing failed.
func TestFailuresLog(t *testing.T) {
	log := &logtest.Buffer{}
	var f Failures
	f.Log(log.Logger(), slog.LevelWarn, "nothing")
	require.Empty(t, log.String())

	td := spiffeid.RequireTrustDomainFromString("example.org")
	f.Add(registry.Entry{ID: "e1", SPIFFEID: spiffeid.RequireFromPath(td, "/a")}, 4*time.Second, errors.New("first"))
	f.Add(registry.Entry{ID: "e2", SPIFFEID: spiffeid.RequireFromPath(td, "/b")}, 2*time.Second, errors.New("second"))
	f.Add(registry.Entry{ID: "e3", SPIFFEID: spiffeid.RequireFromPath(td, "/c")}, 3*time.Second, errors.New("third"))
	f.Log(log.Logger(), slog.LevelWarn, "minting failed")
	for _, s := range []string{"level=WARN", "minting failed", "count=3", "retry_in=2s", "first_entry=e1", "first_spiffe_id=spiffe://example.org/a", "err=first"} {
		require.True(t, log.Contains(s), "%s not in %s", s, log.String())
	}
}

func TestRetryable(t *testing.T) {
	other := errors.New("the server refused")
	err := Retryable(other)
	require.ErrorIs(t, err, endpoint.ErrUnavailable)
	require.ErrorIs(t, err, other)
	for _, kept := range []error{
		fmt.Errorf("x: %w", endpoint.ErrUnavailable), fmt.Errorf("x: %w", endpoint.ErrNoIdentity),
		context.Canceled, context.DeadlineExceeded,
	} {
		require.Equal(t, kept, Retryable(kept))
	}
}
