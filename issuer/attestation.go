package issuer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// reattestWorkers bounds the attestations Run makes at once when streams
// must be attested again.
const reattestWorkers = 4

// errStale sends Subscribe back to attest the caller again: a selector the
// attestor skipped because no entry needed it is needed now.
var errStale = errors.New("issuer: attested without a selector an entry needs now")

// attested is what one attestation of a caller found.
type attested struct {
	selectors []attest.Selector // sorted
	// skipped are the selector kinds the attestor was told no entry needs
	// (attest.Workload.Needed), and may have left out.
	skipped []selectorKind
}

// selectorKind is a selector type and kind (attest.Selector.Kind).
type selectorKind struct{ typ, kind string }

// attest attests caller, with what the Workload API server recorded of it
// at accept: the attestor refuses a process that exited, or executed
// another file, since it connected. The attestor is told which selector
// kinds the registry's entries use, so that it can skip the work of those
// none does (attest/unix hashes the executable only for an entry that
// selects a hash); what it was told is not needed is recorded, so that a
// stream is attested again once it is (see reattest).
func (i *Issuer) attest(ctx context.Context, caller endpoint.Caller) (attested, error) {
	if !caller.HasCredentials() {
		// Only a caller identified by the kernel can be attested (WE rule 5).
		return attested{}, fmt.Errorf("issuer: %w: caller has no kernel credentials", endpoint.ErrNoIdentity)
	}
	var start time.Time
	if i.cfg.Observer != nil {
		start = time.Now()
	}
	var mu sync.Mutex // Needed may be called concurrently (attest.Combine)
	var skipped []selectorKind
	w := caller.Workload()
	w.Needed = func(typ, kind string) bool {
		if i.idx.Uses(typ, kind) {
			return true
		}
		mu.Lock()
		if k := (selectorKind{typ, kind}); !slices.Contains(skipped, k) {
			skipped = append(skipped, k)
		}
		mu.Unlock()
		return false
	}
	sels, err := i.cfg.Attestor.Attest(ctx, w)
	if o := i.cfg.Observer; o != nil {
		o.WorkloadAttested(attestOutcome(err), time.Since(start))
	}
	switch {
	case errors.Is(err, attest.ErrRejected):
		return attested{}, fmt.Errorf("issuer: %w: %w", endpoint.ErrNoIdentity, err)
	case err != nil && ctx.Err() != nil:
		return attested{}, ctx.Err()
	case err != nil:
		return attested{}, fmt.Errorf("issuer: %w: attesting pid %d: %w", endpoint.ErrUnavailable, caller.PID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	a := attested{selectors: sels.Slice(), skipped: skipped}
	if i.log.Enabled(ctx, slog.LevelDebug) {
		// What an operator needs to write the entry a caller lacks.
		i.log.Debug("caller attested", "pid", caller.PID, "uid", caller.UID, "gid", caller.GID,
			"selectors", selectorStrings(a.selectors), "skipped", len(skipped))
	}
	return a, nil
}

// selectorStrings returns the "type:value" form of each selector.
func selectorStrings(ss []attest.Selector) []string {
	out := make([]string, len(ss))
	for k, s := range ss {
		out[k] = s.String()
	}
	return out
}

// attestFresh attests caller until no selector kind the attestor skipped
// is needed by then, a few times at most: for a call that looks its
// entries up once, right after.
func (i *Issuer) attestFresh(ctx context.Context, caller endpoint.Caller) (attested, error) {
	for round := 0; ; round++ {
		a, err := i.attest(ctx, caller)
		if err != nil || !i.stale(a) || round >= maxSubscribeRounds {
			return a, err
		}
	}
}

// stale reports whether an entry now needs a selector kind the
// attestation a skipped.
func (i *Issuer) stale(a attested) bool {
	for _, k := range a.skipped {
		if i.idx.Uses(k.typ, k.kind) {
			return true
		}
	}
	return false
}

// attestOutcome is the outcome an Observer is told of an attestation that
// ended with err.
func attestOutcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, attest.ErrRejected):
		return outcomeRejected
	}
	return outcomeError
}

// reattest attests again the callers of the open streams whose attestation
// skipped a selector kind that an entry needs now, so that their streams
// get the entries that select it: their selectors were taken once, when the
// stream opened. A caller now rejected (its process exited, or executes
// another file) loses its view, which ends its stream with
// PermissionDenied; one that cannot be attested now keeps its view and is
// tried again at the next refresh. Only Run's loop calls it, after each
// change of the index and before refreshing the views.
func (i *Issuer) reattest(ctx context.Context) {
	i.mu.Lock()
	var stale []*subscription
	for sub := range i.subs {
		if i.stale(sub.attested) {
			stale = append(stale, sub)
		}
	}
	i.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	work := make(chan *subscription)
	var wg sync.WaitGroup
	for range min(reattestWorkers, len(stale)) {
		wg.Go(func() {
			for sub := range work {
				a, err := i.attest(ctx, sub.caller)
				i.mu.Lock()
				switch {
				case err == nil:
					sub.attested = a
				case errors.Is(err, endpoint.ErrNoIdentity):
					sub.attested = attested{}
				case ctx.Err() == nil:
					i.log.Warn("attesting a caller again failed; its stream keeps its entries until the next try",
						"pid", sub.caller.PID, "uid", sub.caller.UID, "err", err)
				}
				i.mu.Unlock()
			}
		})
	}
	for _, sub := range stale {
		select {
		case work <- sub:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}
