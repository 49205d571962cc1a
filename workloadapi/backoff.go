package workloadapi

import (
	"math/rand/v2"
	"time"
)

// BackoffStrategy provides backoff facilities.
type BackoffStrategy interface {
	// NewBackoff returns a new backoff for the strategy. The returned
	// Backoff is in the same state that it would be in after a call to
	// Reset().
	NewBackoff() Backoff
}

// Backoff provides backoff for a workload API operation. A Backoff is used by
// one watch loop at a time and need not be safe for concurrent use.
type Backoff interface {
	// Next returns the next backoff period.
	Next() time.Duration

	// Reset() resets the backoff.
	Reset()
}

const (
	// defaultInitialBackoff is the base of the first retry delay.
	defaultInitialBackoff = 100 * time.Millisecond
	// defaultMaxBackoff caps the base of every retry delay.
	defaultMaxBackoff = 30 * time.Second
)

// defaultBackoffStrategy hands out exponentialBackoffs with the default
// bounds. Unlike go-spiffe's linear 1 s, 2 s, 3 s ... steps, its delays start
// small, so that a restarted agent is picked up quickly, double on every
// failure, and carry jitter, so that many workloads on one host do not
// reconnect in lockstep.
type defaultBackoffStrategy struct{}

func (defaultBackoffStrategy) NewBackoff() Backoff {
	return &exponentialBackoff{initial: defaultInitialBackoff, max: defaultMaxBackoff}
}

// exponentialBackoff doubles a base delay on every Next, from initial up to
// max, and returns a random delay between half the base and the base ("equal
// jitter"): never zero, yet spread out.
type exponentialBackoff struct {
	initial, max time.Duration
	base         time.Duration // zero after Reset
}

func (b *exponentialBackoff) Next() time.Duration {
	switch {
	case b.base == 0:
		b.base = b.initial
	case b.base < b.max:
		b.base = min(2*b.base, b.max)
	}
	half := b.base / 2
	return half + rand.N(b.base-half+1)
}

func (b *exponentialBackoff) Reset() { b.base = 0 }
