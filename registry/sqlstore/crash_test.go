package sqlstore_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/pgtest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// The parent passes the child its database, its acknowledgement file and the
// seed of its writes through these variables.
const (
	crashDBEnv   = "SPIFFEKIT_REGISTRY_CRASH_DB"
	crashAckEnv  = "SPIFFEKIT_REGISTRY_CRASH_ACK"
	crashSeedEnv = "SPIFFEKIT_REGISTRY_CRASH_SEED"

	crashRounds = 20
	// Every crashEarlyEvery-th round is killed without waiting for the child
	// to be ready, so that the kill may land while it opens (and, on the first
	// round, migrates) the database.
	crashEarlyEvery = 7
)

// TestCrashWriter is the child process of TestSQLiteCrashSafety: it opens the
// store, says "ready" on stdout, then creates, updates and deletes entries
// until it is killed. After each write returns, it appends "op id revision"
// to the acknowledgement file and syncs it; only such writes count as
// acknowledged.
func TestCrashWriter(t *testing.T) {
	path, ackPath := os.Getenv(crashDBEnv), os.Getenv(crashAckEnv)
	if path == "" || ackPath == "" {
		t.Skip("run by TestSQLiteCrashSafety only")
	}
	seed, err := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	require.NoError(t, err)
	ctx := t.Context()
	s := openSQLite(t, path)
	// Start from what the store holds, which may include the write the
	// previous child made but could not acknowledge.
	entries, _, err := s.List(ctx, registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	live := entries
	ack, err := os.OpenFile(ackPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	require.NoError(t, err)
	fmt.Println("ready")

	for i := uint64(0); ; i++ {
		rng := rand.New(rand.NewPCG(seed, i))
		var line string
		switch p := rng.IntN(10); {
		case len(live) == 0 || p < 6:
			e, err := s.Create(ctx, crashEntry(seed, i, rng))
			require.NoError(t, err)
			live = append(live, e)
			line = fmt.Sprintf("%s %s %d\n", registry.OpCreate, e.ID, e.Revision)
		case p < 9:
			k := rng.IntN(len(live))
			e := live[k]
			e.Hint = fmt.Sprintf("seed %d write %d", seed, i)
			e.X509SVIDTTL = time.Duration(1+rng.IntN(24)) * time.Hour
			// Unique across rounds: a duplicate selector would be refused.
			e.Selectors = append(slices.Clone(e.Selectors), attest.Selector{Type: "unix", Value: fmt.Sprintf("gid:%d-%d", seed, i)})
			if len(e.Selectors) > 8 {
				e.Selectors = e.Selectors[len(e.Selectors)-8:]
			}
			e, err := s.Update(ctx, e)
			require.NoError(t, err)
			live[k] = e
			line = fmt.Sprintf("%s %s %d\n", registry.OpUpdate, e.ID, e.Revision)
		default:
			k := rng.IntN(len(live))
			e, err := s.Delete(ctx, live[k].ID, live[k].Revision)
			require.NoError(t, err)
			live = slices.Delete(live, k, k+1)
			line = fmt.Sprintf("%s %s %d\n", registry.OpDelete, e.ID, e.Revision)
		}
		// Acknowledge only once the store call has returned.
		_, err = ack.WriteString(line)
		require.NoError(t, err)
		require.NoError(t, ack.Sync())
	}
}

// crashEntry returns a new entry whose SPIFFE ID no other write of any round
// uses, so that no create collides and no deleted entry comes back.
func crashEntry(seed, i uint64, rng *rand.Rand) registry.Entry {
	e := registry.Entry{
		SPIFFEID: spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/crash/%d/%d", seed, i)),
		ParentID: spiffeid.RequireFromString(fmt.Sprintf("spiffe://example.org/agent/%d", rng.IntN(3))),
		Selectors: []attest.Selector{
			{Type: "unix", Value: fmt.Sprintf("uid:%d", rng.IntN(100))},
			{Type: "k8s", Value: fmt.Sprintf("ns:team%d", rng.IntN(5))},
		},
		DNSNames:   []string{fmt.Sprintf("w%d.example.org", i)},
		JWTSVIDTTL: time.Duration(rng.IntN(60)) * time.Minute,
	}
	if rng.IntN(4) == 0 {
		e.FederatesWith = []spiffeid.TrustDomain{spiffeid.RequireTrustDomainFromString("partner.example")}
	}
	return e
}

// crashAck is one acknowledged write.
type crashAck struct {
	op       registry.Op
	id       string
	revision int64
}

// TestSQLiteCrashSafety kills a child process that writes to a SQLite store
// at random moments, 20 times on the same database file, and after every kill
// checks that:
//
//   - the database opens (schema migration is idempotent) and passes
//     SQLite's integrity check, with no selector or trust-domain row left
//     without its entry;
//   - every acknowledged write is in the store, and the store differs from
//     the acknowledged writes by at most the one write the child was making
//     when it died;
//   - the change feed kept its earlier events unchanged, gained exactly one
//     event per write that landed, in order, has sequence numbers 1, 2, 3...
//     without gaps (SQLite's AUTOINCREMENT rolls back with the transaction;
//     the registry contract would allow gaps), and replays to exactly the
//     entries the store lists.
//
// SIGKILL ends the process but not the kernel: it checks atomicity and
// recovery at process death, not that data reaches the disk before a power
// loss.
func TestSQLiteCrashSafety(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs SIGKILL semantics of Linux to kill the writer at a random moment")
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, "registry.db")
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	revs := map[string]int64{} // the store's entries after the last round
	var events []registry.Event
	var versions int
	acked, inFlight := 0, 0
	for round := range crashRounds {
		ackPath := filepath.Join(dir, fmt.Sprintf("ack-%02d.log", round))
		early := round%crashEarlyEvery == 0
		ready := runCrashChild(t, exe, path, ackPath, seed+uint64(round)+1, early, rng)
		require.True(t, ready || early, "round %d: the child never became ready", round)

		acks := readAcks(t, ackPath)
		acked += len(acks)
		s := openSQLite(t, path)
		t.Cleanup(func() { _ = s.Close() }) // Close is idempotent
		v := checkIntegrity(t, path)
		if round > 0 {
			require.Equal(t, versions, v, "round %d: reopening changed the schema migrations", round)
		}
		versions = v

		// The store must hold the acknowledged writes, plus at most one more.
		want := applyAcks(t, round, revs, acks)
		got := listAll(t, s)
		gotRevs := make(map[string]int64, len(got))
		for _, e := range got {
			gotRevs[e.ID] = e.Revision
		}
		extra := unacknowledged(t, round, want, gotRevs)
		inFlight += len(extra)

		// The feed keeps its past, then records exactly those writes.
		all := allChanges(t, s)
		require.GreaterOrEqual(t, len(all), len(events), "round %d: events vanished", round)
		if len(events) > 0 {
			require.Equal(t, events, all[:len(events)], "round %d: earlier events changed", round)
		}
		fresh := all[len(events):]
		require.Len(t, fresh, len(acks)+len(extra), "round %d: one event per write that landed", round)
		for i, a := range acks {
			assertEventIs(t, fresh[i], a, "round %d, acknowledgement %d", round, i)
		}
		if len(extra) == 1 {
			assertEventIs(t, fresh[len(acks)], extra[0], "round %d, unacknowledged write", round)
		}
		checkFeed(t, s, all, got)
		require.NoError(t, s.Close())

		revs, events = gotRevs, all
	}
	require.Positive(t, acked, "no write was acknowledged")
	t.Logf("%d rounds, %d acknowledged writes, %d unacknowledged writes that landed, %d entries and %d events at the end",
		crashRounds, acked, inFlight, len(revs), len(events))
}

// runCrashChild runs TestCrashWriter in a new process and kills it: 10 to 80
// ms after it is ready, or, if early, 0 to 80 ms after it starts. It reports
// whether the child became ready, and fails the test if the child ended for
// any reason other than the kill.
func runCrashChild(t *testing.T, exe, path, ackPath string, seed uint64, early bool, rng *rand.Rand) bool {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^TestCrashWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashDBEnv+"="+path,
		crashAckEnv+"="+ackPath,
		fmt.Sprintf("%s=%d", crashSeedEnv, seed),
		// The child needs no PostgreSQL server; naming one keeps TestMain
		// from starting one that the kill would leave behind.
		pgtest.EnvDSN+"=host=/nonexistent",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, w, err := os.Pipe()
	require.NoError(t, err)
	cmd.Stdout = w
	err = cmd.Start()
	w.Close() // the child holds the write end now
	if err != nil {
		stdout.Close()
		require.NoError(t, err)
	}
	// The testing package of the child reports failures on stdout.
	var output bytes.Buffer
	readyc, done := make(chan bool, 1), make(chan struct{})
	go func() {
		defer close(done)
		lines := bufio.NewScanner(stdout)
		ok := false
		for !ok && lines.Scan() {
			ok = lines.Text() == "ready"
			if !ok {
				fmt.Fprintln(&output, lines.Text())
			}
		}
		readyc <- ok
		for lines.Scan() { // until the child is gone, so that it never blocks on stdout
			fmt.Fprintln(&output, lines.Text())
		}
	}()
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		<-done // EOF once the child is gone
		stdout.Close()
	})

	ready := false
	if early {
		time.Sleep(time.Duration(rng.IntN(81)) * time.Millisecond)
	} else {
		select {
		case ready = <-readyc:
		case <-time.After(30 * time.Second):
			t.Fatalf("the child did not start within 30s")
		}
		if ready {
			time.Sleep(time.Duration(10+rng.IntN(71)) * time.Millisecond)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		require.NoError(t, err)
	}
	err = cmd.Wait()
	waited = true
	<-done
	if early {
		ready = <-readyc
	}
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "the child exited by itself:\n%s%s", &output, &stderr)
	status, ok := exit.Sys().(syscall.WaitStatus)
	require.True(t, ok)
	require.True(t, status.Signaled() && status.Signal() == syscall.SIGKILL,
		"the child failed by itself (%v):\n%s%s", err, &output, &stderr)
	return ready
}

// readAcks parses the acknowledgement file. A last line without its newline
// was cut by the kill; its write was never acknowledged.
func readAcks(t *testing.T, path string) []crashAck {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	require.NoError(t, err)
	var out []crashAck
	for {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return out
		}
		data = rest
		f := strings.Fields(string(line))
		require.Len(t, f, 3, "acknowledgement %q", line)
		rev, err := strconv.ParseInt(f[2], 10, 64)
		require.NoError(t, err)
		a := crashAck{id: f[1], revision: rev}
		for _, op := range []registry.Op{registry.OpCreate, registry.OpUpdate, registry.OpDelete} {
			if op.String() == f[0] {
				a.op = op
			}
		}
		require.NotZero(t, a.op, "acknowledgement %q", line)
		out = append(out, a)
	}
}

// applyAcks returns the revisions the store must hold after the
// acknowledged writes, checking that they follow each other.
func applyAcks(t *testing.T, round int, revs map[string]int64, acks []crashAck) map[string]int64 {
	t.Helper()
	want := make(map[string]int64, len(revs)+len(acks))
	for id, r := range revs {
		want[id] = r
	}
	for i, a := range acks {
		r, ok := want[a.id]
		switch a.op {
		case registry.OpCreate:
			require.False(t, ok, "round %d, ack %d: %s created twice", round, i, a.id)
			require.EqualValues(t, 1, a.revision)
			want[a.id] = 1
		case registry.OpUpdate:
			require.True(t, ok && r+1 == a.revision, "round %d, ack %d: update of %s to revision %d after %d", round, i, a.id, a.revision, r)
			want[a.id] = a.revision
		case registry.OpDelete:
			require.True(t, ok && r == a.revision, "round %d, ack %d: delete of %s at revision %d after %d", round, i, a.id, a.revision, r)
			delete(want, a.id)
		}
	}
	return want
}

// unacknowledged compares the store with the acknowledged writes. Every
// acknowledged create and update must be there with its revision and every
// acknowledged delete gone, except for one write made after the last
// acknowledgement, which it returns.
func unacknowledged(t *testing.T, round int, want, got map[string]int64) []crashAck {
	t.Helper()
	var extra []crashAck
	for id, r := range want {
		g, ok := got[id]
		switch {
		case !ok:
			extra = append(extra, crashAck{op: registry.OpDelete, id: id, revision: r})
		case g == r+1:
			extra = append(extra, crashAck{op: registry.OpUpdate, id: id, revision: g})
		case g != r:
			t.Fatalf("round %d: entry %s has revision %d; the acknowledged revision is %d", round, id, g, r)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			require.EqualValues(t, 1, g, "round %d: entry %s appeared at revision %d", round, id, g)
			extra = append(extra, crashAck{op: registry.OpCreate, id: id, revision: g})
		}
	}
	require.LessOrEqual(t, len(extra), 1, "round %d: the store differs from the acknowledged writes by more than the write in flight: %v", round, extra)
	return extra
}

func assertEventIs(t *testing.T, ev registry.Event, a crashAck, msgAndArgs ...any) {
	t.Helper()
	assert.Equal(t, a.op, ev.Op, msgAndArgs...)
	assert.Equal(t, a.id, ev.EntryID, msgAndArgs...)
	assert.Equal(t, a.revision, ev.Entry().Revision, msgAndArgs...)
}

// checkFeed checks that the whole feed has sequence numbers 1, 2, 3... and
// replays to exactly the store's entries.
func checkFeed(t *testing.T, s registry.Store, all []registry.Event, entries []registry.Entry) {
	t.Helper()
	replay := map[string]registry.Entry{}
	for i, ev := range all {
		require.EqualValues(t, i+1, ev.Seq, "event sequence numbers must be 1, 2, 3... without gaps")
		cur, ok := replay[ev.EntryID]
		switch ev.Op {
		case registry.OpCreate:
			require.False(t, ok, "event %d creates existing entry %s", ev.Seq, ev.EntryID)
			require.Nil(t, ev.Before)
			require.NotNil(t, ev.After)
		case registry.OpUpdate, registry.OpDelete:
			require.True(t, ok, "event %d writes missing entry %s", ev.Seq, ev.EntryID)
			require.NotNil(t, ev.Before)
			require.Equal(t, cur, *ev.Before, "event %d: Before is not the entry as it was", ev.Seq)
		default:
			t.Fatalf("event %d has op %v", ev.Seq, ev.Op)
		}
		switch ev.Op {
		case registry.OpUpdate:
			require.NotNil(t, ev.After)
			require.Equal(t, cur.Revision+1, ev.After.Revision, "event %d", ev.Seq)
		case registry.OpDelete:
			require.Nil(t, ev.After)
			delete(replay, ev.EntryID)
			continue
		}
		require.Equal(t, ev.EntryID, ev.After.ID, "event %d", ev.Seq)
		replay[ev.EntryID] = *ev.After
	}
	var replayed []registry.Entry
	for _, e := range replay {
		replayed = append(replayed, e)
	}
	slices.SortFunc(replayed, func(a, b registry.Entry) int { return strings.Compare(a.ID, b.ID) })
	require.Equal(t, entries, replayed, "replaying the feed does not give the store's entries")
	head, err := s.Head(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, len(all), head)
}

// checkIntegrity runs SQLite's integrity check and looks for rows orphaned
// by a half-done write. It returns the number of migrations recorded, which
// must equal the highest version.
func checkIntegrity(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	require.NoError(t, err)
	defer db.Close()
	var result string
	require.NoError(t, db.QueryRow(`PRAGMA integrity_check`).Scan(&result))
	require.Equal(t, "ok", result)
	for _, q := range []string{
		`SELECT COUNT(*) FROM registry_selectors WHERE entry_id NOT IN (SELECT id FROM registry_entries)`,
		`SELECT COUNT(*) FROM registry_federates_with WHERE entry_id NOT IN (SELECT id FROM registry_entries)`,
		`SELECT COUNT(*) FROM registry_entries WHERE id NOT IN (SELECT entry_id FROM registry_selectors)`,
	} {
		var n int
		require.NoError(t, db.QueryRow(q).Scan(&n))
		require.Zero(t, n, q)
	}
	var n, top int
	require.NoError(t, db.QueryRow(`SELECT COUNT(*), COALESCE(MAX(version), 0) FROM registry_schema_migrations`).Scan(&n, &top))
	require.Positive(t, n)
	require.Equal(t, top, n, "one row per schema version")
	return n
}

func listAll(t *testing.T, s registry.Reader) []registry.Entry {
	t.Helper()
	var all []registry.Entry
	token := ""
	for {
		page, next, err := s.List(t.Context(), registry.Filter{}, registry.Page{Token: token, Size: 200})
		require.NoError(t, err)
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
}

func allChanges(t *testing.T, s registry.ChangeFeed) []registry.Event {
	t.Helper()
	var all []registry.Event
	var after int64
	for {
		evs, err := s.Changes(t.Context(), after, 500)
		require.NoError(t, err)
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
}
