package rotation

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// TestRun lets Run rotate on its own in a synctest bubble, whose fake clock
// advances only when every goroutine is blocked.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManager(t, Config{CATTL: 6 * time.Hour})
		updates, unsubscribe := m.Subscribe()
		defer unsubscribe()
		first := mustActive(t, m.X509CAs())

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		// Half the CA life later, a successor is prepared and published.
		time.Sleep(3*time.Hour + time.Minute)
		synctest.Wait()
		require.True(t, drain(updates))
		require.Equal(t, map[State]int{StateActive: 1, StatePrepared: 1}, countStates(m.X509CAs()))

		// At 5/6 of its life, the successor takes over.
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		assert.NotEqual(t, first.ID, mustActive(t, m.X509CAs()).ID)

		// An operator action wakes Run, which then sleeps until the
		// prepared CA's own thresholds.
		_, err := m.PrepareX509CA(ctx)
		require.NoError(t, err)
		synctest.Wait()

		// After three lifetimes, everything has rotated several times.
		time.Sleep(18 * time.Hour)
		synctest.Wait()
		for _, i := range m.X509CAs() {
			assert.True(t, time.Now().Before(i.NotAfter))
		}
		assert.Greater(t, sequence(t, m), uint64(6))

		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// failingJournal fails every Store after the first n.
type failingJournal struct {
	memoryJournal
	mu    sync.Mutex
	left  int
	tries int
}

// attempts returns how many times Store was called.
func (j *failingJournal) attempts() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.tries
}

func (j *failingJournal) setLeft(n int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.left = n
}

func (j *failingJournal) Store(ctx context.Context, doc []byte) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.tries++
	if j.left == 0 {
		return errors.New("disk full")
	}
	j.left--
	return j.memoryJournal.Store(ctx, doc)
}

// TestRunRetries: a failing journal write leaves the published state as it
// was, and Run retries until it succeeds.
func TestRunRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &failingJournal{left: 1}
		m := newManager(t, Config{Journal: j, CATTL: 6 * time.Hour})
		seq := sequence(t, m)

		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		time.Sleep(4 * time.Hour)
		synctest.Wait()
		// Nothing journaled, nothing published: no prepared CA.
		require.Len(t, m.X509CAs(), 1)
		require.Equal(t, seq, sequence(t, m))
		_, err := m.PrepareX509CA(ctx)
		require.ErrorContains(t, err, "disk full")

		j.setLeft(100)
		time.Sleep(maxRunWait)
		synctest.Wait()
		require.Len(t, m.X509CAs(), 2)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

// TestRunRetriesAFailedStepSoon: a step that failed (the journal could not
// be written) is tried again within seconds once the cause is gone, not a
// minute later: the active CA may not have a minute left.
func TestRunRetriesAFailedStepSoon(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		j := &failingJournal{left: 1}
		m := newManager(t, Config{Journal: j, CATTL: 6 * time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		// The preparation falls due a few seconds before half the CA's
		// life (its NotBefore is backdated) and fails until the journal
		// takes writes again, now.
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		require.Len(t, m.X509CAs(), 1)
		j.setLeft(100)
		time.Sleep(maxRunWait / 2)
		synctest.Wait()
		require.Len(t, m.X509CAs(), 2, "the preparation was retried within half a minute")

		// Backing off: the activation, due at 5/6 of the life, failing
		// for half an hour is tried about once a minute, not once a
		// second.
		j.setLeft(0)
		before := j.attempts()
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		tries := j.attempts() - before
		assert.Positive(t, tries)
		assert.Less(t, tries, 80)
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
}

func TestRunCanceled(t *testing.T) {
	m := newManager(t, Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	defer leaktest.Check(t)()
	require.ErrorIs(t, m.Run(ctx), context.Canceled)
}
