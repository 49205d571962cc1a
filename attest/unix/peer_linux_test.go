package unix

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

// connected returns both ends of a unix socket connection this process
// made to itself.
func connected(t *testing.T) (client, server *net.UnixConn) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	lis, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	c, err := net.Dial("unix", lis.Addr().String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	s, err := lis.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return c.(*net.UnixConn), s.(*net.UnixConn)
}

// exeID is the identity of the file process pid executes.
func exeID(t *testing.T, pid string) attest.FileID {
	t.Helper()
	var st sys.Stat_t
	require.NoError(t, sys.Stat("/proc/"+pid+"/exe", &st))
	return fileID(&st)
}

func TestPeer(t *testing.T) {
	_, server := connected(t)
	w, err := Peer(server)
	require.NoError(t, err)
	require.NotNil(t, w.PIDFD)
	defer w.PIDFD.Close()
	assert.Equal(t, os.Getpid(), w.PID)
	assert.Equal(t, &attest.Credentials{UID: os.Geteuid(), GID: os.Getegid()}, w.Credentials)
	a := newAttestor(t, Config{})
	start, err := a.StartTime(os.Getpid())
	require.NoError(t, err)
	assert.Equal(t, start, w.StartTime)
	require.NotNil(t, w.Executable)
	assert.Equal(t, exeID(t, "self"), *w.Executable)
	assert.False(t, w.Executable.IsZero())

	// What Peer recorded is what Attest checks, and it holds.
	_, err = a.Attest(t.Context(), w)
	require.NoError(t, err)

	// A closed connection has no credentials to read.
	require.NoError(t, server.Close())
	_, err = Peer(server)
	require.Error(t, err)
}

// TestRecord checks what Peer records of a process besides the kernel's
// credentials, against processes in each state.
func TestRecord(t *testing.T) {
	t.Run("a live process, without SO_PEERPIDFD", func(t *testing.T) {
		cmd := startSleeper(t)
		w, err := record(DefaultProcRoot, attest.Workload{PID: cmd.Process.Pid})
		require.NoError(t, err)
		require.NotNil(t, w.PIDFD, "opened with pidfd_open")
		defer w.PIDFD.Close()
		assert.NotZero(t, w.StartTime)
		assert.Equal(t, exeID(t, itoa(cmd.Process.Pid)), *w.Executable)
		_, err = newAttestor(t, Config{}).Attest(t.Context(), w)
		require.NoError(t, err)
	})
	t.Run("a reaped process", func(t *testing.T) {
		cmd := startSleeper(t)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		w, err := record(DefaultProcRoot, attest.Workload{PID: cmd.Process.Pid})
		require.ErrorIs(t, err, attest.ErrRejected)
		assert.ErrorContains(t, err, "exited before its connection was accepted")
		assert.Nil(t, w.PIDFD)
	})
	t.Run("a process that exited with its pidfd open", func(t *testing.T) {
		cmd := startSleeper(t)
		pidfd, err := OpenPIDFD(cmd.Process.Pid)
		require.NoError(t, err)
		require.NoError(t, cmd.Process.Kill())
		_ = cmd.Wait()
		_, err = record(DefaultProcRoot, attest.Workload{PID: cmd.Process.Pid, PIDFD: pidfd})
		require.ErrorIs(t, err, attest.ErrRejected)
		assert.ErrorIs(t, pidfd.Close(), os.ErrClosed, "record closed the pidfd it was given")
	})
	t.Run("a zombie", func(t *testing.T) {
		root := t.TempDir()
		p := goodFake(t)
		p.stat = "77 (w) Z 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n"
		p.write(t, root, os.Getpid())
		self, err := OpenPIDFD(os.Getpid())
		require.NoError(t, err)
		_, err = record(root, attest.Workload{PID: os.Getpid(), PIDFD: self})
		require.ErrorIs(t, err, attest.ErrRejected)
	})
	t.Run("what cannot be read is left out", func(t *testing.T) {
		root := t.TempDir()
		p := goodFake(t)
		p.stat = "garbage"
		p.exe = ""
		p.write(t, root, os.Getpid())
		w, err := record(root, attest.Workload{PID: os.Getpid()})
		require.NoError(t, err)
		defer w.PIDFD.Close()
		assert.Zero(t, w.StartTime)
		require.NotNil(t, w.Executable)
		assert.True(t, w.Executable.IsZero(), "an executable that could not be identified")

		// No proc filesystem at all: nothing but the pidfd.
		w, err = record(filepath.Join(root, "file"), attest.Workload{PID: os.Getpid()})
		require.NoError(t, err)
		defer w.PIDFD.Close()
		assert.Nil(t, w.Executable)
	})
	t.Run("a pidfd that is not one", func(t *testing.T) {
		f, err := os.Open(os.DevNull)
		require.NoError(t, err)
		w, err := record(DefaultProcRoot, attest.Workload{PID: os.Getpid(), PIDFD: f})
		require.ErrorContains(t, err, "not a pidfd")
		require.NotErrorIs(t, err, attest.ErrRejected)
		assert.Nil(t, w.PIDFD)
	})
}

// TestAttestExecutableSinceAccept checks the rule against a process that
// connected and then executed another file: the executable recorded at
// accept must be the one the process runs when it is attested.
func TestAttestExecutableSinceAccept(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	sleep := exeID(t, itoa(pid))
	other := exeID(t, "self")
	for _, tt := range []struct {
		name     string
		cfg      Config
		recorded *attest.FileID
		err      string
	}{
		{name: "the same file", recorded: &sleep},
		{name: "nothing recorded", recorded: nil},
		{name: "another file", recorded: &other, err: "executes another file than when it connected"},
		{name: "unidentified at accept", recorded: &attest.FileID{}, err: "could not be identified when it connected"},
		{name: "another file, hash skipped", cfg: Config{SkipHash: true}, recorded: &other, err: "executes another file"},
		// Without executable selectors there is nothing to check.
		{name: "another file, executable skipped", cfg: Config{SkipExecutable: true}, recorded: &other},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newAttestor(t, tt.cfg).Attest(t.Context(), attest.Workload{PID: pid, Executable: tt.recorded})
			if tt.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, attest.ErrRejected)
			assert.ErrorContains(t, err, tt.err)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
