package lifecycle_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/lifecycle"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

var (
	errClosed = errors.New("test: closed")
	errBusy   = errors.New("test: Run called twice")
)

// isClosed reports whether the channel Closed returns is closed.
func isClosed(g *lifecycle.Guard) bool {
	select {
	case <-g.Closed():
		return true
	default:
		return false
	}
}

// Property: a Guard of Once admits one Run ever: a second Begin is refused
// with the busy error while the first runs and after it ended, and every
// Begin after Close with the closed error.
func TestOnceAdmitsOneRun(t *testing.T) {
	defer leaktest.Check(t)()
	g := lifecycle.NewGuard(lifecycle.Once, errClosed, errBusy)
	ctx, done, err := g.Begin(t.Context())
	require.NoError(t, err)
	_, _, err = g.Begin(t.Context())
	require.ErrorIs(t, err, errBusy, "while the first runs")
	done()
	require.Error(t, ctx.Err(), "done cancels the Run's context")
	_, _, err = g.Begin(t.Context())
	require.ErrorIs(t, err, errBusy, "after the first ended")
	g.Close()
	_, _, err = g.Begin(t.Context())
	require.ErrorIs(t, err, errClosed, "closed wins over busy")
}

// Property: a Guard of OneAtATime admits a Run whenever none is under way,
// and none after Close.
func TestOneAtATimeAdmitsRunsInTurn(t *testing.T) {
	defer leaktest.Check(t)()
	g := lifecycle.NewGuard(lifecycle.OneAtATime, errClosed, errBusy)
	for range 2 {
		_, done, err := g.Begin(t.Context())
		require.NoError(t, err)
		_, _, err = g.Begin(t.Context())
		require.ErrorIs(t, err, errBusy, "while one runs")
		done()
	}
	g.Close()
	_, _, err := g.Begin(t.Context())
	require.ErrorIs(t, err, errClosed)
}

// Property: a refused Begin hands back the caller's ctx, untouched, and a
// done that does nothing, so that calling it by mistake does not end the
// Run under way.
func TestRefusedBeginAdmitsNothing(t *testing.T) {
	defer leaktest.Check(t)()
	g := lifecycle.NewGuard(lifecycle.OneAtATime, errClosed, errBusy)
	runCtx, done, err := g.Begin(t.Context())
	require.NoError(t, err)
	ctx, noop, err := g.Begin(t.Context())
	require.ErrorIs(t, err, errBusy)
	assert.Equal(t, t.Context(), ctx)
	noop()
	require.NoError(t, runCtx.Err(), "the Run under way goes on")
	_, _, err = g.Begin(t.Context())
	require.ErrorIs(t, err, errBusy, "and is still counted")
	done()
	g.Close()
}

// Property: Close without a Run returns at once, closes Closed, and is
// idempotent.
func TestCloseWithoutRun(t *testing.T) {
	defer leaktest.Check(t)()
	g := lifecycle.NewGuard(lifecycle.Once, errClosed, errBusy)
	assert.False(t, isClosed(g), "open until Close")
	g.Close()
	assert.True(t, isClosed(g))
	g.Close()
	assert.True(t, isClosed(g))
	ctx, done, err := g.Begin(t.Context())
	require.ErrorIs(t, err, errClosed)
	assert.Equal(t, t.Context(), ctx)
	done()
}

// Property: Close cancels the context of the Run under way and returns
// only once the Run has called done, however long it takes to wind down;
// concurrent Closes all wait.
func TestCloseCancelsAndWaitsForRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := lifecycle.NewGuard(lifecycle.Once, errClosed, errBusy)
		ctx, done, err := g.Begin(context.Background())
		require.NoError(t, err)
		var ended atomic.Bool
		go func() {
			<-ctx.Done()
			time.Sleep(time.Minute) // winding down
			ended.Store(true)
			done()
		}()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				g.Close()
				assert.True(t, ended.Load(), "Close returned before Run ended")
			})
		}
		wg.Wait()
		assert.ErrorIs(t, ctx.Err(), context.Canceled)
		assert.True(t, isClosed(g))
	})
}

// Property: the Run's context ends with the caller's, and Close after the
// Run ended returns at once.
func TestRunContextFollowsCaller(t *testing.T) {
	defer leaktest.Check(t)()
	g := lifecycle.NewGuard(lifecycle.Once, errClosed, errBusy)
	parent, cancel := context.WithCancel(t.Context())
	ctx, done, err := g.Begin(parent)
	require.NoError(t, err)
	require.NoError(t, ctx.Err())
	cancel()
	<-ctx.Done()
	done()
	assert.False(t, isClosed(g), "the caller's ctx does not close the Guard")
	g.Close()
}

// Property: a Begin racing a Close is either admitted, and then waited for
// by Close, or refused with the closed error (run with -race).
func TestBeginRacesClose(t *testing.T) {
	defer leaktest.Check(t)()
	for range 100 {
		g := lifecycle.NewGuard(lifecycle.OneAtATime, errClosed, errBusy)
		var ran atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			ctx, done, err := g.Begin(context.Background())
			if err != nil {
				assert.ErrorIs(t, err, errClosed)
				return
			}
			<-ctx.Done()
			ran.Store(true)
			done()
		})
		g.Close()
		admitted := ran.Load()
		wg.Wait()
		assert.Equal(t, ran.Load(), admitted, "an admitted Run ended before Close returned")
	}
}
