package reliability_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	_ "modernc.org/sqlite" // the SQLite driver, to check a killed server's database

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/bundle/jwtbundle"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/svid/jwtsvid"
	"github.com/spiffekit/spiffekit/svid/x509svid"
	"github.com/spiffekit/spiffekit/workloadapi"
)

func TestMain(m *testing.M) { progtest.Main(m) }

// The environment variables of the campaign (see the package
// documentation and docs/RELIABILITY.md).
const (
	longEnv = "SPIFFEKIT_LONG"
	runsEnv = "SPIFFEKIT_RELIABILITY_RUNS"
	seedEnv = "SPIFFEKIT_RELIABILITY_SEED"
)

// programs skips a test that drives the built programs when the tests run
// under the race detector: the programs are built without it, and what
// runs in the test's own process is a harness, so the test runs in the
// plain pass of the suite (CI runs both) and is not run twice. The
// in-process tests (the clock steps) run under it.
func programs(t *testing.T) {
	t.Helper()
	if raceDetector {
		t.Skip("drives processes built without the race detector; runs in the test pass without -race")
	}
}

// long reports whether the long campaign was asked for.
func long() bool { return os.Getenv(longEnv) == "1" }

// runs returns how many runs a kill test makes: $SPIFFEKIT_RELIABILITY_RUNS,
// else longRuns in the long campaign, else short.
func runs(t *testing.T, short, longRuns int) int {
	t.Helper()
	if s := os.Getenv(runsEnv); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, runsEnv)
		require.Positive(t, n, runsEnv)
		return n
	}
	if long() {
		return longRuns
	}
	return short
}

// newRand returns the random source of a test, from $SPIFFEKIT_RELIABILITY_SEED
// or a new seed, which it logs with the command that replays it.
func newRand(t *testing.T) *mrand.Rand {
	t.Helper()
	var seed uint64
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, seedEnv)
	} else {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	pattern := "^" + strings.ReplaceAll(t.Name(), "/", "$/^") + "$"
	t.Logf("seed %d; replay: %s=%d go test -count=1 -v -run '%s' ./examples/e2e/reliability", seed, seedEnv, seed, pattern)
	return mrand.New(mrand.NewPCG(seed, seed))
}

// jitter returns a random duration in [lo, hi).
func jitter(rng *mrand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// endRun stops a test at the end of a run that failed, naming the run:
// the state the next run would start from is not the one it expects.
func endRun(t *testing.T, run int) {
	t.Helper()
	if t.Failed() {
		t.Fatalf("run %d failed", run+1)
	}
}

// report logs a result line of the campaign, which scripts/reliability
// collects for docs/RELIABILITY.md.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("RESULT %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// entryLedger is what the test knows of the entries it wrote: those the
// server acknowledged, which must never be lost; batches whose answer the
// fault cut off, which must be there in full or not at all; and batches
// under way.
type entryLedger struct {
	mu        sync.Mutex
	acked     map[string]string // entry ID to SPIFFE ID
	uncertain [][]string        // SPIFFE IDs of each batch sent but not answered
	pending   map[string]int    // SPIFFE IDs of the batches under way
	lost, dup int               // found by every check so far
	torn      int               // batches found in part
}

func newEntryLedger() *entryLedger {
	return &entryLedger{acked: map[string]string{}, pending: map[string]int{}}
}

func (l *entryLedger) ack(id, spiffeID string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[id] = spiffeID
}

func (l *entryLedger) unanswered(spiffeIDs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uncertain = append(l.uncertain, spiffeIDs)
}

// sending records a batch under way until done is called, after its
// answer is recorded.
func (l *entryLedger) sending(spiffeIDs []string) (done func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, sid := range spiffeIDs {
		l.pending[sid]++
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, sid := range spiffeIDs {
			if l.pending[sid]--; l.pending[sid] == 0 {
				delete(l.pending, sid)
			}
		}
	}
}

func (l *entryLedger) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// check compares the ledger with the entries list returns (the server's
// list, read while writes may go on): every entry acknowledged before the
// list was read is there with its SPIFFE ID; no SPIFFE ID or entry ID is
// there twice; each batch whose answer was lost before the list was read
// is there in full or not at all (a batch commits at once), and counts as
// acknowledged from now on if it is; nothing is there that was never
// written.
func (l *entryLedger) check(t *testing.T, list func() []registry.Entry) {
	t.Helper()
	l.mu.Lock()
	acked := maps.Clone(l.acked)
	uncertain := len(l.uncertain)
	l.mu.Unlock()
	listed := list()
	l.mu.Lock()
	defer l.mu.Unlock()
	byID := map[string]registry.Entry{}
	bySPIFFEID := map[string]registry.Entry{}
	for _, e := range listed {
		if _, ok := byID[e.ID]; ok {
			l.dup++
			t.Errorf("entry %s is listed twice", e.ID)
		}
		byID[e.ID] = e
		if o, ok := bySPIFFEID[e.SPIFFEID.String()]; ok {
			l.dup++
			t.Errorf("%s is there twice: entries %s and %s", e.SPIFFEID, o.ID, e.ID)
		}
		bySPIFFEID[e.SPIFFEID.String()] = e
	}
	for id, sid := range acked {
		e, ok := byID[id]
		switch {
		case !ok:
			l.lost++
			t.Errorf("acknowledged entry %s (%s) is lost", id, sid)
		case e.SPIFFEID.String() != sid:
			l.lost++
			t.Errorf("acknowledged entry %s was %s, is now %s", id, sid, e.SPIFFEID)
		}
	}
	known := maps.Clone(l.pending)
	for _, sid := range l.acked {
		known[sid]++
	}
	for _, batch := range l.uncertain {
		for _, sid := range batch {
			known[sid]++
		}
	}
	for _, batch := range l.uncertain[:uncertain] {
		var there []registry.Entry
		for _, sid := range batch {
			if e, ok := bySPIFFEID[sid]; ok {
				there = append(there, e)
			}
		}
		if len(there) != 0 && len(there) != len(batch) {
			l.torn++
			t.Errorf("a batch of %d entries whose answer was lost is there in part: %d entries", len(batch), len(there))
		}
		for _, e := range there {
			l.acked[e.ID] = e.SPIFFEID.String()
		}
	}
	l.uncertain = slices.Clone(l.uncertain[uncertain:])
	for _, e := range listed {
		if known[e.SPIFFEID.String()] == 0 {
			t.Errorf("entry %s (%s) was never written", e.ID, e.SPIFFEID)
		}
	}
}

// svidLedger holds the SVIDs a workload was issued, until they expire:
// each must verify against the trust domain's bundle until then.
type svidLedger struct {
	mu       sync.Mutex
	x509     map[string]*x509svid.SVID // by serial number
	jwt      map[string]*jwtsvid.SVID  // by token
	issued   int                       // X509- and JWT-SVIDs recorded
	verified int                       // verifications that succeeded
	failed   int                       // verifications that failed
}

func newSVIDLedger() *svidLedger {
	return &svidLedger{x509: map[string]*x509svid.SVID{}, jwt: map[string]*jwtsvid.SVID{}}
}

func (l *svidLedger) add(x []*x509svid.SVID, j *jwtsvid.SVID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range x {
		serial := s.Certificates[0].SerialNumber.String()
		if _, ok := l.x509[serial]; !ok {
			l.x509[serial] = s
			l.issued++
		}
	}
	if j != nil {
		if _, ok := l.jwt[j.Marshal()]; !ok {
			l.jwt[j.Marshal()] = j
			l.issued++
		}
	}
}

// jwtMargin keeps the validation of a JWT-SVID, which reads the clock
// itself, away from the token's last second: one that expires while it is
// checked is not a failure. X509-SVIDs are verified at one instant taken
// after the bundle was read, and need no margin.
const jwtMargin = time.Second

// check verifies every SVID that has not expired against the bundles of
// x and j (what names them), and forgets
// those that have.
func (l *svidLedger) check(t *testing.T, x x509bundle.Source, j jwtbundle.Source, what string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	for serial, s := range l.x509 {
		leaf := s.Certificates[0]
		if !now.Before(leaf.NotAfter) {
			delete(l.x509, serial)
			continue
		}
		if _, _, err := x509svid.Verify(s.Certificates, x, x509svid.WithTime(now)); err != nil {
			l.failed++
			t.Errorf("X509-SVID %s (serial %s, issuer key %s, expires %s) does not verify against %s: %v",
				s.ID, serial, hex.EncodeToString(leaf.AuthorityKeyId), leaf.NotAfter.Format(time.RFC3339Nano), what, err)
			continue
		}
		l.verified++
	}
	for token, s := range l.jwt {
		if now.Add(jwtMargin).After(s.Expiry) {
			delete(l.jwt, token)
			continue
		}
		if _, err := jwtsvid.ParseAndValidate(token, j, s.Audience); err != nil {
			l.failed++
			t.Errorf("JWT-SVID %s (expires %s) does not validate against %s: %v", s.ID, s.Expiry.Format(time.RFC3339Nano), what, err)
			continue
		}
		l.verified++
	}
}

// fetchStats counts a workload's fetches.
type fetchStats struct {
	fetches    int // rounds of one X509-SVID and one JWT-SVID fetch
	x509Failed int
	jwtFailed  int
	// denied counts the answers that the workload has no identity: wrong
	// answers, as long as its entries exist.
	denied int
	// limited counts the calls refused by the agent's rate limit, which
	// the test's other calls share (counted among the failed).
	limited int
}

func (f fetchStats) String() string {
	return fmt.Sprintf("%d fetches of both, %d X509-SVID fetches failed, %d JWT-SVID fetches failed (%d of them refused by the rate limit), %d told it had no identity",
		f.fetches, f.x509Failed, f.jwtFailed, f.limited, f.denied)
}

// workloadPace is the pause between two rounds of a workload's fetches:
// two calls every 200 ms keep it well below the agent's default rate limit
// (20 calls a second for each uid), which the test's other calls share.
const workloadPace = 200 * time.Millisecond

// workload fetches, until stop, the X509-SVIDs and a JWT-SVID of the
// test process from the agent of addr, every workloadPace, recording them in l;
// stop returns how many fetches were made and how many failed, and logs
// the first failures.
func workload(t *testing.T, addr string, l *svidLedger) (stop func() fetchStats) {
	ctx, cancel := context.WithCancel(context.Background())
	var st fetchStats
	var errs []string
	failed := func(err error) {
		if len(errs) < 5 {
			errs = append(errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fctx, fcancel := context.WithTimeout(ctx, 2*time.Second)
			x, xerr := workloadapi.FetchX509SVIDs(fctx, workloadapi.WithAddr(addr))
			j, jerr := workloadapi.FetchJWTSVID(fctx, jwtsvid.Params{Audience: "reliability"}, workloadapi.WithAddr(addr))
			fcancel()
			if ctx.Err() != nil {
				return
			}
			st.fetches++
			for _, err := range []error{xerr, jerr} {
				switch status.Code(err) {
				case codes.PermissionDenied:
					st.denied++
				case codes.ResourceExhausted:
					st.limited++
				}
			}
			if xerr != nil {
				st.x509Failed++
				failed(xerr)
			}
			if jerr != nil {
				st.jwtFailed++
				failed(jerr)
			}
			l.add(x, j)
			select {
			case <-ctx.Done():
			case <-time.After(workloadPace):
			}
		}
	}()
	return sync.OnceValue(func() fetchStats {
		cancel()
		<-done
		for _, e := range errs {
			t.Logf("a workload fetch failed: %s", e)
		}
		return st
	})
}

// server is one spiffe-server of a test, run from the built program and
// killed and started again at will, with an admin client.
type server struct {
	t     *testing.T
	e     *progtest.Env
	td    spiffeid.TrustDomain
	proc  *progtest.Proc
	admin *admin.Client
	pg    bool
}

// newServer returns the example.org server of a new Env over backend
// ("sqlite", in its data directory, or "postgres", a new database), not
// started.
func newServer(t *testing.T, backend string, args ...string) *server {
	t.Helper()
	s := &server{t: t, td: spiffeid.RequireTrustDomainFromString("example.org")}
	if backend == "postgres" {
		s.pg = true
		args = append([]string{"-datastore", pgtest.New(t)}, args...)
	}
	s.e = progtest.NewEnv(t, args...)
	s.admin = admin.Dial(s.e.AdminSock)
	t.Cleanup(func() { s.admin.Close() })
	return s
}

// dataDir is the server's data directory.
func (s *server) dataDir() string { return filepath.Join(s.e.Dir, "server") }

// start starts the server and waits until it is ready.
func (s *server) start() {
	s.t.Helper()
	s.proc = s.e.StartServer()
}

// kill kills the server with SIGKILL and reaps it.
func (s *server) kill() {
	s.t.Helper()
	s.proc.Stop(s.t, syscall.SIGKILL)
}

// ctx bounds one call of the test to a program.
func (s *server) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.t.Context(), progtest.Timeout)
}

// bundle returns the trust domain's bundle as the server hands it out.
func (s *server) bundle() *spiffebundle.Bundle {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	doc, err := s.admin.Bundle(ctx, admin.FormatSPIFFE)
	require.NoError(s.t, err)
	b, err := spiffebundle.Parse(s.td, doc)
	require.NoError(s.t, err)
	return b
}

// entries returns every entry the server lists.
func (s *server) entries() []registry.Entry {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	list, err := s.admin.ListEntries(ctx, registry.Filter{})
	require.NoError(s.t, err)
	return list
}

// checkStopped checks what a stopped (killed) server left in its data
// directory: the CA journal reads back whole, and the SQLite database, if
// it keeps one, passes SQLite's integrity check.
func (s *server) checkStopped() {
	s.t.Helper()
	doc, err := rotation.NewFileJournal(filepath.Join(s.dataDir(), "ca-journal.json")).Load(s.t.Context())
	require.NoError(s.t, err, "the CA journal")
	require.True(s.t, json.Valid(doc), "the CA journal is a whole JSON document")
	if s.pg {
		return
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(s.dataDir(), "datastore.sqlite3")+"?mode=ro&_pragma=busy_timeout(10000)")
	require.NoError(s.t, err)
	defer db.Close()
	var result string
	require.NoError(s.t, db.QueryRowContext(s.t.Context(), "PRAGMA integrity_check").Scan(&result))
	require.Equal(s.t, "ok", result, "SQLite's integrity check of the killed server's database")
}

// writeEntries creates, through the server's admin socket, entries under
// parent in batches (see writeBatch), one batch after the other until ctx
// is done or a batch fails, and returns the error of the batch that
// failed, if one did.
func (s *server) writeEntries(ctx context.Context, rng *mrand.Rand, l *entryLedger, parent, prefix string, next *int, maxBatch int) error {
	for ctx.Err() == nil {
		if err := s.writeBatch(ctx, rng, l, parent, prefix, next, maxBatch); err != nil {
			return err
		}
	}
	return nil
}

// writeBatch creates a batch of 1 to maxBatch entries under parent with
// "spiffe-server entry create -data -", recording in l what the server
// acknowledged, and what it may or may not have created if the command
// failed. The SPIFFE IDs are prefix/<n>, n counting from *next.
func (s *server) writeBatch(ctx context.Context, rng *mrand.Rand, l *entryLedger, parent, prefix string, next *int, maxBatch int) error {
	n := 1 + rng.IntN(maxBatch)
	var file struct {
		Entries []map[string]any `json:"entries"`
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("spiffe://example.org/%s/%d", prefix, *next)
		*next++
		file.Entries = append(file.Entries, map[string]any{"spiffe_id": ids[i], "parent_id": parent,
			"selectors": []string{"unix:uid:" + strconv.Itoa(10000+rng.IntN(1000))}})
	}
	in, _ := json.Marshal(file)
	defer l.sending(ids)()
	out, err := createEntries(ctx, s.e.ServerBin, s.e.AdminSock, in)
	answered := 0
	for line := range strings.Lines(out) {
		id, sid, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(line, "error:") {
			return fmt.Errorf("entry create -data: unexpected line %q", line)
		}
		if sid != ids[answered] {
			return fmt.Errorf("entry create -data: line %d names %s, not %s", answered+1, sid, ids[answered])
		}
		l.ack(id, sid)
		answered++
	}
	if err != nil {
		if answered < n {
			l.unanswered(ids[answered:])
		}
		return err
	}
	if answered != n {
		return fmt.Errorf("entry create -data: %d lines for %d entries", answered, n)
	}
	return nil
}

// createEntries runs "spiffe-server entry create -data -" with in as its
// input, and returns its output, and an error if it failed.
func createEntries(ctx context.Context, serverBin, adminSock string, in []byte) (string, error) {
	cmd := exec.CommandContext(ctx, serverBin, "entry", "create", "-admin-socket", adminSock, "-data", "-")
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// waitServed waits until the agent of addr serves the test process an
// X509-SVID of each of ids.
func waitServed(t *testing.T, addr string, ids []spiffeid.ID) {
	t.Helper()
	progtest.WaitFor(t, "the workload to be served its SVIDs", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr(addr))
		if err != nil {
			progtest.Note(t, "FetchX509SVIDs: "+err.Error())
			return false
		}
		for _, id := range ids {
			if !slices.ContainsFunc(svids, func(s *x509svid.SVID) bool { return s.ID == id }) {
				progtest.Note(t, "no X509-SVID of "+id.String())
				return false
			}
		}
		return true
	})
}

// workloadBundles are the bundles the Workload API serves.
type workloadBundles struct {
	x509 *x509bundle.Set
	jwt  *jwtbundle.Set
}

// fetchBundles fetches the X.509 and JWT bundles the agent of addr serves.
func fetchBundles(t *testing.T, addr string) workloadBundles {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), progtest.Timeout)
	defer cancel()
	x, err := workloadapi.FetchX509Bundles(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	j, err := workloadapi.FetchJWTBundles(ctx, workloadapi.WithAddr(addr))
	require.NoError(t, err)
	return workloadBundles{x, j}
}

// countLines counts the lines of out that contain s.
func countLines(out, s string) int {
	n := 0
	for line := range strings.Lines(out) {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}
