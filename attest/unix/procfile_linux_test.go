package unix

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func TestReadProcFile(t *testing.T) {
	want, err := os.ReadFile("/proc/self/cgroup")
	require.NoError(t, err)
	got, err := ReadProcFile("", self(), "cgroup", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = ReadProcFile(DefaultProcRoot, self(), "cgroup", 1)
	require.ErrorContains(t, err, "larger than 1 bytes")
	for _, name := range []string{"", ".", "..", "../1/cgroup", "task/1"} {
		_, err = ReadProcFile("", self(), name, 1<<20)
		require.ErrorContains(t, err, "is not a file name", name)
	}
	_, err = ReadProcFile("", attest.Workload{PID: 0}, "cgroup", 1<<20)
	require.ErrorContains(t, err, "is not a process")
	_, err = ReadProcFile("", self(), "no-such-file", 1<<20)
	require.Error(t, err)
	require.NotErrorIs(t, err, attest.ErrRejected, "the process is alive: a read that fails is no rejection")
	// A symbolic link is not followed: exe names the executable.
	_, err = ReadProcFile("", self(), "exe", 1<<20)
	require.Error(t, err)
}

// TestReadProcFileBindsTheProcess checks that ReadProcFile describes the
// process a Workload records, and no other that has its PID.
func TestReadProcFileBindsTheProcess(t *testing.T) {
	a := newAttestor(t, Config{})
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	start, err := a.StartTime(pid)
	require.NoError(t, err)
	pidfd, err := OpenPIDFD(pid)
	require.NoError(t, err)
	defer pidfd.Close()
	w := attest.Workload{PID: pid, StartTime: start, PIDFD: pidfd}

	_, err = ReadProcFile("", w, "cgroup", 1<<20)
	require.NoError(t, err)

	// Another process at the PID started at another time.
	_, err = ReadProcFile("", attest.Workload{PID: pid, StartTime: start - 1}, "cgroup", 1<<20)
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "the PID was reused")

	// A pidfd of another process.
	other, err := OpenPIDFD(os.Getpid())
	require.NoError(t, err)
	defer other.Close()
	_, err = ReadProcFile("", attest.Workload{PID: pid, PIDFD: other}, "cgroup", 1<<20)
	require.ErrorContains(t, err, "pidfd refers to process")

	// Killed: a zombie, then reaped.
	require.NoError(t, cmd.Process.Kill())
	require.Eventually(t, func() bool {
		_, err := ReadProcFile("", w, "cgroup", 1<<20)
		return err != nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err = ReadProcFile("", w, "cgroup", 1<<20)
	require.ErrorIs(t, err, attest.ErrRejected)
	_ = cmd.Wait()
	_, err = ReadProcFile("", attest.Workload{PID: pid}, "cgroup", 1<<20)
	require.ErrorIs(t, err, attest.ErrRejected)
}
