package nodeserver

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/logtest"
)

// acquireAsync starts an acquire and returns the channel its result
// arrives on, once the waiter is queued.
func acquireAsync(t *testing.T, tu *turns, again bool, wait time.Duration, stop ...<-chan struct{}) <-chan error {
	t.Helper()
	before := tu.queued()
	done := make(chan error, 1)
	go func() { done <- tu.acquire(again, wait, stop) }()
	for deadline := time.Now().Add(10 * time.Second); tu.queued() == before; {
		require.True(t, time.Now().Before(deadline), "the waiter never queued")
		time.Sleep(time.Millisecond)
	}
	return done
}

func (t *turns) queued() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.again.Len() + t.first.Len()
}

func TestTurnsGoFirstToHandshakesBegun(t *testing.T) {
	tu := newTurns(1)
	require.NoError(t, tu.acquire(false, time.Second, nil))
	first := acquireAsync(t, tu, false, time.Minute)
	again := acquireAsync(t, tu, true, time.Minute)

	// The turn goes to the waiter that held one before, though it came
	// later.
	tu.release()
	require.NoError(t, <-again)
	select {
	case err := <-first:
		t.Fatalf("a new handshake got the turn before the one begun: %v", err)
	default:
	}
	tu.release()
	require.NoError(t, <-first)
	tu.release()
	require.Equal(t, 1, tu.free, "every turn given back")
}

func TestTurnsWaitBounded(t *testing.T) {
	tu := newTurns(1)
	require.NoError(t, tu.acquire(false, time.Second, nil))

	err := tu.acquire(false, 10*time.Millisecond, nil)
	require.ErrorIs(t, err, errHandshakeWait)
	require.Zero(t, tu.queued(), "a waiter that gave up leaves the queue")

	stop := make(chan struct{})
	done := acquireAsync(t, tu, true, time.Hour, nil, stop)
	close(stop)
	require.ErrorIs(t, <-done, errHandshakeStopped)
	require.Zero(t, tu.queued())

	// The turn is still the holder's, and given back once.
	tu.release()
	require.Equal(t, 1, tu.free)
}

func TestTurnsHandedOnWhenGivenUp(t *testing.T) {
	// A waiter handed a turn as it gives up hands the turn on, so none
	// is lost: run the race many times.
	for range 200 {
		tu := newTurns(1)
		require.NoError(t, tu.acquire(false, time.Second, nil))
		done := make(chan error, 1)
		go func() { done <- tu.acquire(false, time.Microsecond, nil) }()
		tu.release()
		if err := <-done; err == nil {
			tu.release()
		} else {
			require.True(t, errors.Is(err, errHandshakeWait))
		}
		require.Equal(t, 1, tu.free, "a turn was lost or made")
		require.Zero(t, tu.queued())
	}
}

// Property: refusals are logged at Warn at most once a minute, each line
// with the refusals since the last one, whose counts add up to the total.
func TestRefusalsWarnOnceAMinute(t *testing.T) {
	var logs logtest.Buffer
	now := time.Unix(1_000_000, 0)
	r := &refusals{log: logs.Logger(), wait: time.Second, turns: 4, now: func() time.Time { return now }}
	remote := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4242}
	warns := func() []string {
		var out []string
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") {
				out = append(out, l[strings.Index(l, " count="):])
			}
		}
		return out
	}
	r.add(remote)
	require.Equal(t, []string{" count=1 total=1 wait=1s max_handshakes=4"}, warns())
	for range 5 {
		now = now.Add(10 * time.Second)
		r.add(remote)
	}
	require.Len(t, warns(), 1, "within the minute: no other Warn line")
	now = now.Add(10 * time.Second) // a minute after the first line
	r.add(remote)
	require.Equal(t, []string{" count=1 total=1 wait=1s max_handshakes=4", " count=6 total=7 wait=1s max_handshakes=4"}, warns())
	require.Equal(t, uint64(7), r.count())
	require.Equal(t, 7, strings.Count(logs.String(), "level=DEBUG msg=\"closed an agent's connection: its TLS handshake waited too long for a turn\" remote=192.0.2.1:4242 wait=1s"))
}
