package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"time"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// Interval is how long the issuer waits before it tries again to mint an
// X509-SVID that failed, with the local signer, and the first wait with a
// remote one.
const Interval = time.Second

// MaxInterval caps the backoff of a failing remote Signer.
const MaxInterval = 30 * time.Second

// State is the failure record of one entry's mint.
type State struct {
	// Revision is that of the entry that failed.
	Revision int64
	// Failures counts the failures in a row.
	Failures int
	// At is when the mint may be tried again.
	At time.Time
	// Err is the last failure, returned to callers until At.
	Err error
}

// Local is the retry schedule of a local signer: a failure there (no
// active CA) costs nothing to retry.
func Local(int) time.Duration { return Interval }

// Remote is the retry schedule of a remote Signer: exponential from
// Interval up to MaxInterval, jittered over its upper half, so that the
// agents of a server that was down do not all come back at once.
func Remote(failures int) time.Duration {
	d := min(Interval<<min(max(failures-1, 0), 6), MaxInterval)
	return d/2 + mrand.N(d/2+1)
}

// Failures sums up the failures of one batch of mints, for one log line:
// how many, the soonest retry, and the first failure. The zero value holds
// none.
type Failures struct {
	count   int
	retryIn time.Duration
	entry   registry.Entry
	err     error
}

// Add counts the failure err of entry e's mint, tried again in retryIn.
func (f *Failures) Add(e registry.Entry, retryIn time.Duration, err error) {
	if f.count == 0 || retryIn < f.retryIn {
		f.retryIn = retryIn
	}
	if f.count == 0 {
		f.entry, f.err = e, err
	}
	f.count++
}

// Log logs f with msg, if it holds a failure, at level.
func (f *Failures) Log(log *slog.Logger, level slog.Level, msg string) {
	if f.count == 0 {
		return
	}
	log.Log(context.Background(), level, msg, "count", f.count, "retry_in", f.retryIn,
		"first_entry", f.entry.ID, "first_spiffe_id", f.entry.SPIFFEID.String(), "err", f.err)
}

// Retryable returns err, the failure to mint one entry's SVID, as the
// Workload API should report it: a caller is told to retry (Unavailable),
// as the issuer itself retries, unless err already says what the caller
// should see (no identity, unavailable) or that it went away.
func Retryable(err error) error {
	if errors.Is(err, endpoint.ErrUnavailable) || errors.Is(err, endpoint.ErrNoIdentity) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", endpoint.ErrUnavailable, err)
}
