package partition_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// workload is a workload of the test process watching its X509-SVIDs over
// the Workload API, as a service using an X509Source does: it holds the
// SVIDs of the last update it received, also while the stream is broken.
// It checks what it holds at every update and every 50 ms: every SVID
// verifies against the bundle it came with, and none expires while a path
// to a server works (see down).
type workload struct {
	t      testing.TB
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	held    []*x509svid.SVID
	seen    map[string]map[string]bool // SPIFFE ID to the serials received
	updates int
	// errs counts the stream errors after the first update (before it,
	// the agent may not hold the workload's entry yet), errMsgs each
	// distinct one.
	errs    int
	errMsgs map[string]int
	// outages are the periods in which no path to a server worked; an
	// outage still under way has a zero end.
	outages    []outage
	reported   map[string]bool // serials already reported expired
	violations []string
}

type outage struct{ start, end time.Time }

// watchWorkload starts watching the Workload API on socket.
func watchWorkload(t testing.TB, socket string) *workload {
	ctx, cancel := context.WithCancel(context.Background())
	w := &workload{t: t, cancel: cancel, seen: map[string]map[string]bool{}, reported: map[string]bool{}, errMsgs: map[string]int{}}
	w.wg.Go(func() {
		err := workloadapi.WatchX509Context(ctx, w, workloadapi.WithAddr("unix://"+socket))
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("workload: watching the Workload API: %v", err)
		}
	})
	w.wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				w.mu.Lock()
				w.checkLocked()
				w.mu.Unlock()
			}
		}
	})
	t.Cleanup(w.stop)
	return w
}

// stop ends the watch and fails the test for every violation seen.
func (w *workload) stop() {
	w.cancel()
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, v := range w.violations {
		w.t.Error(v)
	}
	w.violations = nil
}

// OnX509ContextUpdate implements workloadapi.X509ContextWatcher.
func (w *workload) OnX509ContextUpdate(c *workloadapi.X509Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.updates++
	for _, s := range c.SVIDs {
		serial := s.Certificates[0].SerialNumber.Text(16)
		if _, _, err := x509svid.Verify(s.Certificates, c.Bundles); err != nil {
			w.violations = append(w.violations, fmt.Sprintf("workload: received %s (serial %s), which does not verify against the bundle it came with: %v", s.ID, serial, err))
		}
		if w.seen[s.ID.String()] == nil {
			w.seen[s.ID.String()] = map[string]bool{}
		}
		w.seen[s.ID.String()][serial] = true
	}
	w.held = c.SVIDs
	w.checkLocked()
}

// OnX509ContextWatchError implements workloadapi.X509ContextWatcher.
func (w *workload) OnX509ContextWatchError(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.updates == 0 {
		return
	}
	w.errs++
	w.errMsgs[err.Error()]++
}

// checkLocked records a violation for every SVID held that expired at a
// moment when a path to a server worked. One that expired during an
// outage is not one: no agent can renew it then.
func (w *workload) checkLocked() {
	now := time.Now()
	for _, s := range w.held {
		leaf := s.Certificates[0]
		serial := leaf.SerialNumber.Text(16)
		if now.Before(leaf.NotAfter) || w.reported[serial] || w.downAtLocked(leaf.NotAfter) {
			continue
		}
		w.reported[serial] = true
		w.violations = append(w.violations, fmt.Sprintf("workload: holds %s (serial %s), which expired at %s while a path to a server worked (outages: %s)",
			s.ID, serial, leaf.NotAfter.Format(time.RFC3339Nano), w.outagesLocked()))
	}
}

func (w *workload) downAtLocked(at time.Time) bool {
	for _, o := range w.outages {
		if !at.Before(o.start) && (o.end.IsZero() || at.Before(o.end)) {
			return true
		}
	}
	return false
}

func (w *workload) outagesLocked() string {
	if len(w.outages) == 0 {
		return "none"
	}
	var s string
	for _, o := range w.outages {
		end := "now"
		if !o.end.IsZero() {
			end = o.end.Format(time.RFC3339Nano)
		}
		s += fmt.Sprintf("[%s, %s) ", o.start.Format(time.RFC3339Nano), end)
	}
	return s
}

// down records that no path to a server works from now on, until up.
func (w *workload) down() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outages = append(w.outages, outage{start: time.Now()})
}

// up records that a path to a server works again.
func (w *workload) up() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outages[len(w.outages)-1].end = time.Now()
}

// has reports whether the workload holds an SVID of id now.
func (w *workload) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.ContainsFunc(w.held, func(s *x509svid.SVID) bool { return s.ID.String() == id })
}

// minted returns how many different SVIDs of id the workload received.
func (w *workload) minted(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen[id])
}

// expired returns the SPIFFE IDs of the SVIDs the workload holds that
// have expired.
func (w *workload) expired() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var ids []string
	for _, s := range w.held {
		if !time.Now().Before(s.Certificates[0].NotAfter) {
			ids = append(ids, s.ID.String())
		}
	}
	return ids
}

// stats returns how many updates and stream errors (after the first
// update) the workload saw, and logs the errors.
func (w *workload) stats() (updates, errs int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for msg, n := range w.errMsgs {
		w.t.Logf("workload: %d stream errors: %s", n, msg)
	}
	return w.updates, w.errs
}

// missing returns the IDs of ids of which the workload holds no SVID.
func (w *workload) missing(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !w.has(id) {
			out = append(out, id)
		}
	}
	return out
}
