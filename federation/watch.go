package federation

import (
	"context"
	"errors"
	"time"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/spiffeid"
)

const (
	// minRefresh and maxRefresh bound the interval WatchBundle waits between
	// two fetches, whatever the watcher returns: a watcher returning zero or
	// a negative duration cannot make it poll in a tight loop (Fed rule 22),
	// and a huge refresh hint cannot stop it from polling for days.
	minRefresh = time.Second
	maxRefresh = time.Hour
)

// BundleWatcher is used by WatchBundle to provide the caller with bundle
// updates and control the next refresh time. WatchBundle calls its methods
// from the goroutine that called WatchBundle, one at a time.
type BundleWatcher interface {
	// NextRefresh is called by WatchBundle to determine when the next refresh
	// should take place. A refresh hint is provided, which can be zero, meaning
	// the watcher is free to choose its own refresh cadence. If the refresh hint
	// is greater than zero, the watcher SHOULD return a next refresh time at or
	// below that to ensure the bundle stays up-to-date.
	NextRefresh(refreshHint time.Duration) time.Duration

	// OnUpdate is called when a bundle has been updated. If a bundle is
	// fetched but has not changed from the previously fetched bundle, OnUpdate
	// will not be called. This function is called synchronously by WatchBundle
	// and therefore should have a short execution time to prevent blocking the
	// watch.
	OnUpdate(*spiffebundle.Bundle)

	// OnError is called if there is an error fetching the bundle from the
	// endpoint. This function is called synchronously by WatchBundle
	// and therefore should have a short execution time to prevent blocking the
	// watch.
	OnError(err error)
}

// WatchBundle watches a bundle on a bundle endpoint. It returns when the
// context is canceled, returning ctx.Err().
//
// Each round fetches the bundle as FetchBundle does, always from url (a
// redirect is never remembered, Fed rule 11), then:
//   - on failure calls watcher.OnError and keeps going; OnUpdate is never
//     called with anything but a successfully fetched and parsed bundle, so a
//     watcher that keeps the last good bundle keeps it (Fed rule 25);
//   - on success calls watcher.OnUpdate if the bundle differs from the last
//     one fetched (always after the first successful fetch), as go-spiffe does;
//     a bundle with no keys at all is an update like any other (Fed rule 25);
//   - waits watcher.NextRefresh(hint), where hint is the refresh hint of the
//     last successfully fetched bundle, or zero when there is none (the
//     watcher then picks, Fed rule 21: five minutes is the recommended
//     default). The wait is clamped to [1s, 1h].
//
// With WithSPIFFEAuth, the bundle source is read at every fetch: a watcher
// that stores each bundle it receives in that source (Fed rule 17) has the
// next fetch authenticated with the latest bundle.
//
// A fetch cut short because ctx is done is not reported to OnError;
// WatchBundle returns ctx.Err() (context.Canceled or
// context.DeadlineExceeded) at once.
//
// Unlike go-spiffe, WatchBundle returns at once, without calling the watcher,
// when the configuration can never work (nil watcher, zero trust domain, an
// invalid URL or conflicting options): those errors start with "federation: ".
func WatchBundle(ctx context.Context, trustDomain spiffeid.TrustDomain, url string, watcher BundleWatcher, options ...FetchOption) error {
	if watcher == nil {
		return wrapFederationErr(errors.New("watcher cannot be nil"))
	}
	f, err := newFetcher(trustDomain, url, options)
	if err != nil {
		return err
	}

	var latest *spiffebundle.Bundle
	// Timers of Go 1.23 and later drop a stale tick on Reset.
	timer := time.NewTimer(maxRefresh)
	defer timer.Stop()
	for {
		bundle, err := f.fetch(ctx)
		if ctx.Err() != nil {
			// Cancelled during the fetch: its error says nothing about the
			// endpoint, so the watcher is not told.
			return ctx.Err()
		}
		switch {
		case err != nil:
			watcher.OnError(err)
		case latest == nil || !latest.Equal(bundle):
			// Keep a copy, so a watcher that changes the bundle it was given
			// cannot change what the next fetch is compared with.
			latest = bundle.Clone()
			watcher.OnUpdate(bundle)
		}

		var hint time.Duration
		if latest != nil {
			hint, _ = latest.RefreshHint()
		}
		timer.Reset(clampRefresh(watcher.NextRefresh(hint)))
		select {
		case <-timer.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func clampRefresh(d time.Duration) time.Duration {
	return min(max(d, minRefresh), maxRefresh)
}
