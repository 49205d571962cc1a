package reliability_test

import (
	"context"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// loaded is a server over a PostgreSQL server of the test's own, with an
// agent serving the test process (its workload), and the load a fault
// meets: entry batches written through the admin socket, entries and the
// bundle read back, the workload fetching its SVIDs.
type loaded struct {
	*server
	pg      *pgtest.Server
	agentID string
	entries *entryLedger
	svids   *svidLedger
	want    []spiffeid.ID // the SPIFFE IDs the workload must hold

	writes  *opLog
	reads   *opLog
	next    int        // the number of the next entry written
	fetched fetchStats // the workload's, once stopAll returned
	stopAll func()
}

// newLoaded starts a PostgreSQL server with its files in pgDir, a
// spiffe-server over it with args, an agent, and the workload's entries.
func newLoaded(t *testing.T, pgDir string, args ...string) *loaded {
	t.Helper()
	l := &loaded{pg: pgtest.NewServer(t, pgDir), entries: newEntryLedger(), svids: newSVIDLedger(),
		writes: &opLog{}, reads: &opLog{}}
	l.server = newServer(t, "sqlite", append([]string{"-datastore", l.pg.DSN()}, args...)...)
	l.start()
	l.e.StartAgent(l.e.Token())
	l.agentID = l.e.AgentID()
	l.addWorkloadEntry()
	return l
}

// addWorkloadEntry registers one more entry for the workload, which it
// must then be served.
func (l *loaded) addWorkloadEntry() {
	l.t.Helper()
	e := l.register(l.agentID, fmt.Sprintf("/workload/%d", len(l.want)))
	l.entries.ack(e.ID, e.SPIFFEID.String())
	l.want = append(l.want, e.SPIFFEID)
}

// opLog counts the operations of one kind of load and keeps the distinct
// errors they met.
type opLog struct {
	mu         sync.Mutex
	ok, failed int
	errs       map[string]int
}

func (o *opLog) add(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.ok++
		return
	}
	o.failed++
	if o.errs == nil {
		o.errs = map[string]int{}
	}
	o.errs[normalize(err.Error())]++
}

// normalize drops what differs between two occurrences of one error (entry
// numbers, process IDs, addresses) so that they count as one.
func normalize(msg string) string {
	f := strings.FieldsFunc(msg, func(r rune) bool { return r == '\n' })
	if len(f) > 0 {
		msg = f[len(f)-1]
	}
	var b strings.Builder
	digits := false
	for _, r := range msg {
		if '0' <= r && r <= '9' {
			if !digits {
				b.WriteByte('N')
			}
			digits = true
			continue
		}
		digits = false
		b.WriteRune(r)
	}
	return b.String()
}

// count returns how many operations succeeded.
func (o *opLog) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.ok
}

// failedCount returns how many operations failed.
func (o *opLog) failedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.failed
}

func (o *opLog) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := fmt.Sprintf("%d ok, %d failed", o.ok, o.failed)
	for _, msg := range slices.Sorted(func(yield func(string) bool) {
		for m := range o.errs {
			if !yield(m) {
				return
			}
		}
	}) {
		s += fmt.Sprintf("; %dx %q", o.errs[msg], msg)
	}
	return s
}

// load starts the load: a writer of entry batches (1 to 50 entries, one
// after the other; after a failed one, the next after 100 ms), a reader that
// lists every entry and reads the bundle and checks each answer it gets,
// and the workload. stop stops them and returns the workload's fetches.
func (l *loaded) load(rng *mrand.Rand) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wrng := mrand.New(mrand.NewPCG(rng.Uint64(), rng.Uint64()))
	wg.Go(func() {
		for ctx.Err() == nil {
			err := l.writeBatch(ctx, wrng, l.entries, "spiffe://example.org/node", "load", &l.next, 50)
			if ctx.Err() != nil {
				return
			}
			l.writes.add(err)
			if err != nil {
				pause(ctx, 100*time.Millisecond)
			}
		}
	})
	var wrong atomic.Int64
	wg.Go(func() {
		for ctx.Err() == nil {
			err := l.readBack(ctx, &wrong)
			if ctx.Err() != nil {
				return
			}
			l.reads.add(err)
			pause(ctx, 50*time.Millisecond)
		}
	})
	// The workload starts once its entry reached the agent: before, it is
	// rightly told it has no identity.
	waitServed(l.t, "unix://"+l.e.APISock, l.want)
	stopWorkload := workload(l.t, "unix://"+l.e.APISock, l.svids)
	l.stopAll = sync.OnceFunc(func() {
		cancel()
		wg.Wait()
		l.fetched = stopWorkload()
		assert.Zero(l.t, wrong.Load(), "answers that were wrong")
		assert.Zero(l.t, l.fetched.denied, "answers to the workload that it had no identity")
	})
	l.t.Cleanup(l.stopAll)
}

// pause waits for d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// readBack lists the entries and reads the bundle through the admin
// socket. An answer may be an error, but never a wrong answer: a list that
// lacks an entry acknowledged before the read began, or a bundle without
// a CA. Wrong answers are counted in wrong and returned as errors.
func (l *loaded) readBack(ctx context.Context, wrong *atomic.Int64) error {
	l.entries.mu.Lock()
	before := make(map[string]string, len(l.entries.acked))
	for id, sid := range l.entries.acked {
		before[id] = sid
	}
	l.entries.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, progtest.Timeout)
	defer cancel()
	list, err := l.admin.ListEntries(rctx, registry.Filter{})
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(list))
	for _, e := range list {
		listed[e.ID] = true
	}
	for id, sid := range before {
		if !listed[id] {
			wrong.Add(1)
			l.t.Errorf("a wrong answer: the entry list lacks %s (%s), acknowledged before", id, sid)
			return errors.New("wrong answer")
		}
	}
	doc, err := l.admin.Bundle(rctx, "pem")
	if err != nil {
		return err
	}
	if !strings.Contains(string(doc), "BEGIN CERTIFICATE") {
		wrong.Add(1)
		l.t.Errorf("a wrong answer: a bundle without a CA: %q", doc)
		return errors.New("wrong answer")
	}
	return nil
}

// recovered waits (bounded) until the server answers writes again and a
// new entry reaches the workload through the agent, then checks the
// entries and the SVIDs.
func (l *loaded) recovered(what string) {
	l.t.Helper()
	progtest.WaitFor(l.t, "the server to take writes again after "+what, func() bool {
		ctx, cancel := l.ctx()
		defer cancel()
		_, err := l.admin.GenerateToken(ctx, time.Minute, spiffeid.ID{})
		if err != nil {
			progtest.Note(l.t, err.Error())
		}
		return err == nil
	}, l.proc)
	l.addWorkloadEntry()
	waitServed(l.t, "unix://"+l.e.APISock, l.want)
	l.entries.check(l.t, l.listEntries)
	b := l.bundle()
	l.svids.check(l.t, b, b, "the server's bundle")
}

// listEntries lists the entries (bounded, retried while the database comes
// back).
func (l *loaded) listEntries() []registry.Entry {
	l.t.Helper()
	var list []registry.Entry
	progtest.WaitFor(l.t, "the entry list", func() bool {
		ctx, cancel := l.ctx()
		defer cancel()
		var err error
		list, err = l.admin.ListEntries(ctx, registry.Filter{})
		return err == nil
	})
	return list
}

// TestPostgreSQLRestartedUnderLoad restarts PostgreSQL (pg_ctl restart,
// fast: connections cut, transactions rolled back) at random moments
// while a server over it takes entry batches, answers reads and serves an
// agent, whose workload fetches its SVIDs. Through each restart, every
// answer is right or an error (a read never lacks an acknowledged entry,
// the bundle never lacks its CA); after it, the server takes writes again
// on its own, a new entry reaches the workload, no acknowledged entry is
// lost or duplicated, no batch is torn, and every SVID verifies.
func TestPostgreSQLRestartedUnderLoad(t *testing.T) {
	programs(t)
	t.Cleanup(leaktest.Check(t))
	rng := newRand(t)
	n := runs(t, 2, 20)
	l := newLoaded(t, progtest.ShortTemp(t), "-x509-svid-ttl", "10s")
	l.load(rng)
	for run := range n {
		wait := jitter(rng, 200*time.Millisecond, 2*time.Second)
		t.Logf("run %d: PostgreSQL restarted in %s", run+1, wait.Round(time.Millisecond))
		time.Sleep(wait)
		require.NoError(t, l.pg.Restart())
		l.recovered("a PostgreSQL restart")
		endRun(t, run)
	}
	l.stopAll()
	report(t, "%d restarts; writes: %s; reads: %s; %d entries acknowledged, %d lost, %d duplicated, %d batches torn; "+
		"%d SVIDs issued, %d verifications, %d failed; workload: %s; the server process never exited",
		n, l.writes, l.reads, l.entries.size(), l.entries.lost, l.entries.dup, l.entries.torn,
		l.svids.issued, l.svids.verified, l.svids.failed, l.fetched)
}
