package reliability_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/internal/testing/progtest"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// tmpfs mounts a tmpfs of size (e.g. "64m") and mode (e.g. "0700") at
// dir, creating dir, and unmounts it when the test ends. Mounting needs
// root: the test is skipped, saying so, without it (CI runs as root).
func tmpfs(t *testing.T, dir, size, mode string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root; CI runs as root")
	}
	require.NoError(t, os.MkdirAll(dir, 0o700))
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode="+mode, "tmpfs", dir).CombinedOutput()
	require.NoError(t, err, "mount: %s", out)
	t.Cleanup(func() {
		// What used the file system may take a moment to let go of it
		// (PostgreSQL's backends outlive its immediate shutdown).
		var out []byte
		var err error
		for deadline := time.Now().Add(progtest.Timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if out, err = exec.Command("umount", dir).CombinedOutput(); err == nil {
				return
			}
		}
		t.Errorf("umount %s: %v: %s", dir, err, out)
		_ = exec.Command("umount", "-l", dir).Run() // never leave it mounted
	})
}

// fill fills the file system of dir with a file of zeros until a write
// fails for want of space, and returns the function that deletes it.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	require.NoError(t, err)
	buf := make([]byte, 1<<20)
	for len(buf) >= 512 {
		if _, err := f.Write(buf); err != nil {
			require.True(t, errors.Is(err, syscall.ENOSPC), "filling %s: %v", dir, err)
			buf = buf[:len(buf)/2]
		}
	}
	require.NoError(t, f.Close())
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	t.Logf("%s filled: %d bytes left", dir, st.Bavail*uint64(st.Bsize))
	return func() { require.NoError(t, os.Remove(path)) }
}

// TestPostgreSQLDiskFull fills the disk of PostgreSQL (its data directory
// and WAL on a 160 MiB tmpfs) while a server over it takes entry batches,
// answers reads and serves an agent and its workload; then frees it. While
// it is full: writes fail with an error, every answer is right or an
// error, the server process stays up and the workload is served. Once
// space returns: the server takes writes again on its own, a new entry
// reaches the workload, no acknowledged entry is lost or duplicated, no
// batch is torn, and every SVID verifies.
func TestPostgreSQLDiskFull(t *testing.T) {
	programs(t)
	pgDir := filepath.Join(progtest.ShortTemp(t), "pg")
	tmpfs(t, pgDir, "160m", "0700")
	t.Cleanup(leaktest.Check(t))
	rng := newRand(t)
	n := runs(t, 1, 5)
	l := newLoaded(t, pgDir, "-x509-svid-ttl", "10s")
	l.load(rng)
	restarts := 0
	for run := range n {
		progtest.WaitFor(t, "some writes before the disk fills", func() bool { return l.writes.count() >= 5*(run+1) })
		free := fill(t, pgDir)
		failedBefore := l.writes.failedCount()
		progtest.WaitFor(t, "writes to fail on the full disk", func() bool { return l.writes.failedCount() >= failedBefore+3 }, l.proc)
		waitServed(t, "unix://"+l.e.APISock, l.want)
		free()
		restarted := false
		progtest.WaitFor(t, "PostgreSQL to accept connections once space returns", func() bool {
			if l.pg.Ping() == nil {
				return true
			}
			if !restarted && l.pg.Stopped() {
				// PostgreSQL stops itself when it cannot write its WAL; an
				// operator starts it again once there is space.
				t.Log("PostgreSQL stopped itself on the full disk; starting it again, as an operator would")
				restarted = true
				restarts++
				require.NoError(t, l.pg.Start())
			}
			return false
		})
		l.recovered("PostgreSQL's disk filled and freed")
		endRun(t, run)
	}
	l.stopAll()
	report(t, "%d fills; writes: %s; reads: %s; PostgreSQL stopped itself %d times; %d entries acknowledged, %d lost, %d duplicated, %d batches torn; "+
		"%d SVIDs issued, %d verifications, %d failed; workload: %s; the server process never exited",
		n, l.writes, l.reads, restarts, l.entries.size(), l.entries.lost, l.entries.dup, l.entries.torn,
		l.svids.issued, l.svids.verified, l.svids.failed, l.fetched)
	assert.Contains(t, l.pg.Log(), "No space left on device", "PostgreSQL met the full disk")
}

// TestServerDataDirFull fills the server's data directory (a 64 MiB tmpfs
// holding its SQLite database, CA keys and journal) while it takes entry
// batches, answers reads, rotates its 40 s CAs and serves an agent; then
// frees it, once a rotation step failed, long before the active CA
// expires (a CA that expires takes the agent SVIDs it signed with it). While it is full: writes fail with an
// error, every answer is right or an error, the process stays up, a
// rotation step that cannot be written fails and is logged, and the
// workload is served the SVIDs the server can still sign. Once space
// returns: writes succeed, the CA rotates again on its own, the workload
// gets fresh SVIDs, no entry is lost or duplicated, and after a kill the
// journal and the database read back whole.
func TestServerDataDirFull(t *testing.T) {
	programs(t)
	t.Cleanup(leaktest.Check(t))
	rng := newRand(t)
	s := newServer(t, "sqlite", "-ca-ttl", "40s", "-x509-svid-ttl", "4s", "-jwt-svid-ttl", "4s")
	tmpfs(t, s.dataDir(), "64m", "0700")
	l := &loaded{server: s, entries: newEntryLedger(), svids: newSVIDLedger(), writes: &opLog{}, reads: &opLog{}}
	l.start()
	l.e.StartAgent(l.e.Token())
	l.agentID = l.e.AgentID()
	l.addWorkloadEntry()
	l.load(rng)
	n := runs(t, 1, 5)
	for run := range n {
		progtest.WaitFor(t, "some writes before the disk fills", func() bool { return l.writes.count() >= 5*(run+1) })
		mark := len(l.proc.Output())
		free := fill(t, s.dataDir())
		failedBefore := l.writes.failedCount()
		progtest.WaitFor(t, "writes to fail on the full disk", func() bool { return l.writes.failedCount() >= failedBefore+3 }, l.proc)
		progtest.WaitFor(t, "a rotation step to fail on the full disk", func() bool {
			return strings.Contains(l.proc.Output()[mark:], "rotation failed")
		}, l.proc)
		waitServed(t, "unix://"+l.e.APISock, l.want)
		mark = len(l.proc.Output())
		free()
		progtest.WaitFor(t, "the CA to rotate again once space returns", func() bool {
			return strings.Contains(l.proc.Output()[mark:], "authority prepared")
		}, l.proc)
		l.recovered("the data directory filled and freed")
		endRun(t, run)
	}
	l.stopAll()
	failedSteps := countLines(l.proc.Output(), "rotation failed")
	s.kill()
	s.checkStopped()
	report(t, "%d fills; writes: %s; reads: %s; %d rotation steps failed and were logged; %d entries acknowledged, %d lost, %d duplicated, %d batches torn; "+
		"%d SVIDs issued, %d verifications, %d failed; workload: %s; the server process never exited; the journal and database read back after a final kill",
		n, l.writes, l.reads, failedSteps, l.entries.size(), l.entries.lost, l.entries.dup, l.entries.torn,
		l.svids.issued, l.svids.verified, l.svids.failed, l.fetched)
}

// TestAgentDataDirFull fills the agent's data directory (a 1 MiB tmpfs
// holding its SVID, key and bundle) while it renews its 4 s SVID every 2 s
// and serves a workload; then frees it. While it is full: the agent logs
// that it cannot save, stays up and keeps serving the workload. Once space
// returns: it renews again, and after a kill it starts from what it saved
// (no corrupt state) without attesting again.
func TestAgentDataDirFull(t *testing.T) {
	programs(t)
	s := newServer(t, "sqlite", "-agent-svid-ttl", "4s", "-x509-svid-ttl", "6s")
	agentDir := filepath.Join(s.e.Dir, "agent-data")
	tmpfs(t, agentDir, "1m", "0700")
	t.Cleanup(leaktest.Check(t))
	s.start()
	args := s.e.AgentArgs(s.e.Token())
	agent := progtest.Start(t, s.e.AgentBin, args...)
	agentID := s.e.AgentID()
	want := []spiffeid.ID{s.register(agentID, "/web").SPIFFEID}
	addr := "unix://" + s.e.APISock
	svids := newSVIDLedger()
	waitServed(t, addr, want) // before, the workload is rightly told it has no identity
	stopWorkload := workload(t, addr, svids)
	defer stopWorkload()
	n := runs(t, 1, 5)
	failures := 0
	for run := range n {
		free := fill(t, agentDir)
		mark := len(agent.Output())
		progtest.WaitFor(t, "the agent to fail to save its renewed SVID", func() bool {
			return strings.Contains(agent.Output()[mark:], "no space left on device")
		}, agent)
		time.Sleep(4 * time.Second) // longer than the agent SVID's life: the agent must not depend on saving it
		waitServed(t, addr, want)
		failures += countLines(agent.Output()[mark:], "no space left on device")
		mark = len(agent.Output())
		free()
		// "agent SVID renewed" comes before the save: a kill between the
		// two would leave the SVID saved before the disk filled, expired.
		progtest.WaitFor(t, "the agent to save its SVID once space returns", func() bool {
			return strings.Contains(agent.Output()[mark:], "saved the agent SVID")
		}, agent)
		agent.Stop(t, syscall.SIGKILL)
		svids.addSaved(t, agentDir)
		agent = progtest.Start(t, s.e.AgentBin, args...)
		waitServed(t, addr, want)
		require.Contains(t, agent.Output(), "reusing the saved agent SVID", "run %d", run+1)
		b := s.bundle()
		svids.check(t, b, b, "the server's bundle")
		endRun(t, run)
	}
	fetched := stopWorkload()
	assert.Zero(t, fetched.denied, "answers to the workload that it had no identity")
	report(t, "%d fills; %d failures to save logged while full; the agent stayed up and served, saved its SVID once space returned, "+
		"and restarted from its saved state every time; %d SVIDs issued, %d verifications, %d failed; workload (failing while the agent was restarted): %s",
		n, failures, svids.issued, svids.verified, svids.failed, fetched)
}
