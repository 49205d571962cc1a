package issuer

import (
	"context"
	"errors"
	"sync"

	"github.com/spiffekit/spiffekit/issuer/internal/attestation"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// reattestWorkers bounds the attestations Run makes at once when streams
// must be attested again.
const reattestWorkers = 4

// errStale sends Subscribe back to attest the caller again: a selector the
// attestor skipped because no entry needed it is needed now.
var errStale = errors.New("issuer: attested without a selector an entry needs now")

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
		if i.att.Stale(sub.attested) {
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
				a, err := i.att.Attest(ctx, sub.caller)
				i.mu.Lock()
				switch {
				case err == nil:
					sub.attested = a
				case errors.Is(err, endpoint.ErrNoIdentity):
					sub.attested = attestation.Attested{}
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
