package federation_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/federation"
	"github.com/spiffekit/spiffekit/internal/testing/testca"
)

// recorder is a BundleWatcher that records every call.
type recorder struct {
	mu       sync.Mutex
	next     time.Duration
	hints    []time.Duration
	updates  []*spiffebundle.Bundle
	errs     []error
	onUpdate func(*spiffebundle.Bundle)
}

func (r *recorder) NextRefresh(hint time.Duration) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hints = append(r.hints, hint)
	return r.next
}

func (r *recorder) OnUpdate(b *spiffebundle.Bundle) {
	r.mu.Lock()
	r.updates = append(r.updates, b)
	fn := r.onUpdate
	r.mu.Unlock()
	if fn != nil {
		fn(b)
	}
}

func (r *recorder) OnError(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *recorder) setNext(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next = d
}

// state returns the number of updates and errors and the last hint given.
func (r *recorder) state() (updates, errs int, lastHint time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.hints) > 0 {
		lastHint = r.hints[len(r.hints)-1]
	}
	return len(r.updates), len(r.errs), lastHint
}

func (r *recorder) lastUpdate() *spiffebundle.Bundle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.updates[len(r.updates)-1]
}

func (r *recorder) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errs[len(r.errs)-1]
}

// endpoint is a bundle endpoint whose certificate, bundle and failures a
// test changes as it goes. It is started outside any synctest bubble (its
// goroutines wait on the network), while certificates are minted inside the
// bubble so that they are valid at the bubble's clock.
type endpoint struct {
	svid    testca.X509Source
	bundles bundleServer
	raw     atomic.Pointer[[]byte] // when set, served instead of the bundle
	fetches atomic.Int32
	url     string
}

func startEndpoint(t *testing.T) *endpoint {
	t.Helper()
	e := &endpoint{}
	h := newHandler(t, &e.bundles)
	e.url = startSPIFFEServer(t, &e.svid, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.fetches.Add(1)
		if raw := e.raw.Load(); raw != nil {
			_, _ = w.Write(*raw)
			return
		}
		h.ServeHTTP(w, r)
	})).URL
	return e
}

// watch runs WatchBundle in the bubble and returns a function that cancels it
// and returns its result.
func watch(t *testing.T, url string, w federation.BundleWatcher, opts ...federation.FetchOption) func() error {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- federation.WatchBundle(ctx, td, url, w, opts...) }()
	return func() error {
		cancel()
		return <-done
	}
}

func TestWatchBundle(t *testing.T) {
	e := startEndpoint(t)
	synctest.Test(t, func(t *testing.T) {
		partner := testca.New(t, td)
		e.svid.Set(partner.NewSVID(t, endpointID.Path()))
		b1 := bundleOf(partner) // refresh hint 10s
		e.bundles.set(b1, nil)
		w := &recorder{next: 10 * time.Second}
		stop := watch(t, e.url, w, federation.WithSPIFFEAuth(b1, endpointID))

		// The first successful fetch is an update; the bundle's refresh hint
		// goes to NextRefresh (Fed rule 21).
		synctest.Wait()
		updates, errs, hint := w.state()
		assert.Equal(t, []int{1, 0}, []int{updates, errs})
		assert.Equal(t, 10*time.Second, hint)
		assert.True(t, b1.Equal(w.lastUpdate()))
		assert.EqualValues(t, 1, e.fetches.Load())

		// The next fetch waits for NextRefresh's answer.
		time.Sleep(10*time.Second - time.Nanosecond)
		synctest.Wait()
		assert.EqualValues(t, 1, e.fetches.Load())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.EqualValues(t, 2, e.fetches.Load())
		updates, errs, _ = w.state()
		assert.Equal(t, []int{1, 0}, []int{updates, errs}, "an unchanged bundle is not an update")

		// Failures go to OnError, never to OnUpdate, and the watch goes on
		// at the regular interval (Fed rules 22, 25), with the hint of the
		// last good bundle.
		e.bundles.set(nil, errors.New("store is down"))
		time.Sleep(10 * time.Second)
		synctest.Wait()
		updates, errs, hint = w.state()
		assert.Equal(t, []int{1, 1}, []int{updates, errs})
		assert.Contains(t, w.lastErr().Error(), `federation: bundle endpoint answered "500 Internal Server Error"`)
		assert.Equal(t, 10*time.Second, hint)

		malformed := []byte(`{"keys":`)
		e.raw.Store(&malformed)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		updates, errs, _ = w.state()
		assert.Equal(t, []int{1, 2}, []int{updates, errs})
		assert.Contains(t, w.lastErr().Error(), "federation: spiffebundle:")

		// Recovery with a new bundle that has no refresh hint: an update,
		// and NextRefresh gets 0 (the watcher picks, Fed rule 21).
		e.raw.Store(nil)
		b2 := bundleOf(testca.New(t, td))
		b2.ClearRefreshHint()
		e.bundles.set(b2, nil)
		w.setNext(0)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		updates, errs, hint = w.state()
		assert.Equal(t, []int{2, 2}, []int{updates, errs})
		assert.Equal(t, time.Duration(0), hint)
		assert.True(t, b2.Equal(w.lastUpdate()))

		// A watcher answering 0 gets the 1s floor, not a tight loop.
		fetches := e.fetches.Load()
		w.setNext(100 * time.Hour)
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, fetches, e.fetches.Load())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, fetches+1, e.fetches.Load())

		// A watcher answering 100h gets the 1h ceiling. (The round counts
		// NextRefresh calls: by then the endpoint's SVID has expired, so the
		// fetch fails.)
		rounds := func() int {
			w.mu.Lock()
			defer w.mu.Unlock()
			return len(w.hints)
		}
		n := rounds()
		time.Sleep(time.Hour - time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, n, rounds())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		assert.Equal(t, n+1, rounds())

		require.ErrorIs(t, stop(), context.Canceled)
	})
}

// TestWatchBundleSelfServingRotation: with a self-serving https_spiffe
// endpoint, the watcher puts each new bundle into the bundle source that
// authenticates the endpoint, so the foreign trust domain can rotate its CA
// without breaking the relationship (Fed rules 17 and 24).
func TestWatchBundleSelfServingRotation(t *testing.T) {
	e := startEndpoint(t)
	synctest.Test(t, func(t *testing.T) {
		oldCA, newCA := testca.New(t, td), testca.New(t, td)
		e.svid.Set(oldCA.NewSVID(t, endpointID.Path()))
		// The new CA is published before it signs anything (Fed rule 24).
		e.bundles.set(bundleOf(oldCA, newCA), nil)

		// The operator bootstraps the relationship with the old bundle.
		bootstrap := bundleOf(oldCA)
		trust := spiffebundle.NewSet(bootstrap)
		w := &recorder{next: 10 * time.Second, onUpdate: trust.Add}
		stop := watch(t, e.url, w, federation.WithSPIFFEAuth(trust, endpointID))
		synctest.Wait()
		updates, errs, _ := w.state()
		require.Equal(t, []int{1, 0}, []int{updates, errs})

		// The partner rotates: its endpoint now presents an SVID from the
		// new CA and publishes only the new CA.
		e.svid.Set(newCA.NewSVID(t, endpointID.Path()))
		e.bundles.set(bundleOf(newCA), nil)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		updates, errs, _ = w.state()
		require.Equal(t, []int{2, 0}, []int{updates, errs}, "the watch must authenticate with the latest bundle")
		got, err := trust.GetBundleForTrustDomain(td)
		require.NoError(t, err)
		assert.True(t, bundleOf(newCA).Equal(got))

		// Control: the bootstrap bundle alone no longer authenticates the
		// endpoint (Fed rule 17: it is good for the first fetch only).
		_, err = federation.FetchBundle(t.Context(), td, e.url, federation.WithSPIFFEAuth(bootstrap, endpointID))
		require.Error(t, err)

		require.ErrorIs(t, stop(), context.Canceled)
	})
}

// TestWatchBundleWatcherCannotChangeTheBaseline: a watcher that modifies the
// bundle it was given does not make the next identical fetch an update.
func TestWatchBundleWatcherCannotChangeTheBaseline(t *testing.T) {
	e := startEndpoint(t)
	synctest.Test(t, func(t *testing.T) {
		partner := testca.New(t, td)
		e.svid.Set(partner.NewSVID(t, endpointID.Path()))
		b := bundleOf(partner)
		e.bundles.set(b, nil)
		w := &recorder{next: time.Second, onUpdate: func(got *spiffebundle.Bundle) {
			got.SetX509Authorities(nil)
		}}
		stop := watch(t, e.url, w, federation.WithSPIFFEAuth(b.Clone(), endpointID))
		time.Sleep(5 * time.Second)
		synctest.Wait()
		updates, errs, _ := w.state()
		assert.Equal(t, []int{1, 0}, []int{updates, errs})
		assert.GreaterOrEqual(t, e.fetches.Load(), int32(5))
		require.ErrorIs(t, stop(), context.Canceled)
	})
}

func TestWatchBundleConfiguration(t *testing.T) {
	w := &recorder{}
	err := federation.WatchBundle(t.Context(), td, "https://127.0.0.1:1/", nil)
	require.EqualError(t, err, "federation: watcher cannot be nil")

	// A configuration that can never work is returned at once, not retried.
	err = federation.WatchBundle(t.Context(), td, "http://127.0.0.1:1/", w)
	require.ErrorContains(t, err, "federation: bundle endpoint URL scheme must be https")
	err = federation.WatchBundle(t.Context(), td, "https://127.0.0.1:1/", w,
		federation.WithWebPKIRoots(nil), federation.WithWebPKIRoots(nil))
	require.ErrorContains(t, err, "federation: cannot use both SPIFFE and Web PKI authentication")
	updates, errs, _ := w.state()
	assert.Equal(t, []int{0, 0}, []int{updates, errs})
}

// TestWatchBundleCancelledDuringFetch: a fetch cut short by ctx is not
// reported to the watcher; WatchBundle returns ctx.Err().
func TestWatchBundleCancelledDuringFetch(t *testing.T) {
	partner := testca.New(t, td)
	release := make(chan struct{})
	srv := startSPIFFEServer(t, partner.NewSVID(t, endpointID.Path()), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) })

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	w := &recorder{}
	err := federation.WatchBundle(ctx, td, srv.URL, w, federation.WithSPIFFEAuth(bundleOf(partner), endpointID))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	updates, errs, _ := w.state()
	assert.Equal(t, []int{0, 0}, []int{updates, errs})
}
