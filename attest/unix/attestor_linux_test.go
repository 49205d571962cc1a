package unix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sys "golang.org/x/sys/unix"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func newAttestor(t testing.TB, cfg Config) *Attestor {
	t.Helper()
	a, err := New(cfg)
	require.NoError(t, err)
	return a
}

func unixSel(value string) attest.Selector { return attest.Selector{Type: SelectorType, Value: value} }

func self() attest.Workload {
	return attest.Workload{
		PID:         os.Getpid(),
		Credentials: &attest.Credentials{UID: os.Geteuid(), GID: os.Getegid()},
	}
}

// startSleeper starts a child process that lives until the test kills it.
func startSleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func TestAttestSelf(t *testing.T) {
	a := newAttestor(t, Config{})
	got, err := a.Attest(t.Context(), self())
	require.NoError(t, err)

	exe, err := os.Executable()
	require.NoError(t, err)
	exe, err = filepath.EvalSymlinks(exe)
	require.NoError(t, err)

	assert.True(t, got.Contains(unixSel("uid:"+strconv.Itoa(os.Geteuid()))), got.String())
	assert.True(t, got.Contains(unixSel("gid:"+strconv.Itoa(os.Getegid()))), got.String())
	assert.True(t, got.Contains(unixSel("path:"+exe)), got.String())
	assert.True(t, got.Contains(unixSel("sha256:"+fileSHA256(t, exe))), got.String())
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil {
		assert.True(t, got.Contains(unixSel("user:"+u.Username)), got.String())
	}
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getegid())); err == nil {
		assert.True(t, got.Contains(unixSel("group:"+g.Name)), got.String())
	}
	groups, err := os.Getgroups()
	require.NoError(t, err)
	for _, g := range groups {
		assert.True(t, got.Contains(unixSel("supplementary_gid:"+strconv.Itoa(g))), got.String())
	}
	for s := range got.All() {
		require.NoError(t, s.Validate())
	}

	// Without credentials the answer is the same.
	again, err := a.Attest(t.Context(), attest.Workload{PID: os.Getpid()})
	require.NoError(t, err)
	assert.True(t, got.Equal(again))
}

func TestAttestConfig(t *testing.T) {
	tests := []struct {
		name             string
		cfg              Config
		wantPath, wantSH bool
	}{
		{name: "default", cfg: Config{}, wantPath: true, wantSH: true},
		{name: "skip hash", cfg: Config{SkipHash: true}, wantPath: true},
		{name: "skip executable", cfg: Config{SkipExecutable: true}},
		{name: "no name cache", cfg: Config{NameCacheTTL: -1, ProcRoot: "/proc"}, wantPath: true, wantSH: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newAttestor(t, tt.cfg).Attest(t.Context(), self())
			require.NoError(t, err)
			var path, sum bool
			for s := range got.All() {
				path = path || len(s.Value) > 5 && s.Value[:5] == "path:"
				sum = sum || len(s.Value) > 7 && s.Value[:7] == "sha256:"
			}
			assert.Equal(t, tt.wantPath, path)
			assert.Equal(t, tt.wantSH, sum)
		})
	}

	_, err := New(Config{MaxExecutableSize: -1})
	require.Error(t, err)

	// An executable over the limit fails attestation rather than going
	// unhashed.
	_, err = newAttestor(t, Config{MaxExecutableSize: 1024}).Attest(t.Context(), self())
	require.ErrorContains(t, err, "more than the limit of 1024")
	require.NotErrorIs(t, err, attest.ErrRejected)
}

func TestAttestChild(t *testing.T) {
	a := newAttestor(t, Config{})
	cmd := startSleeper(t)
	pid := cmd.Process.Pid

	got, err := a.Attest(t.Context(), attest.Workload{PID: pid})
	require.NoError(t, err)
	sleep, err := filepath.EvalSymlinks(cmd.Path)
	require.NoError(t, err)
	assert.True(t, got.Contains(unixSel("path:"+sleep)), got.String())
	assert.True(t, got.Contains(unixSel("sha256:"+fileSHA256(t, sleep))), got.String())

	// Killed but not reaped: a zombie, which is not the workload any more.
	require.NoError(t, cmd.Process.Kill())
	require.Eventually(t, func() bool {
		_, err := a.Attest(t.Context(), attest.Workload{PID: pid})
		return err != nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err = a.Attest(t.Context(), attest.Workload{PID: pid})
	require.ErrorIs(t, err, attest.ErrRejected)
	// The state turns to zombie a moment after the executable is gone.
	require.Eventually(t, func() bool {
		_, err := a.StartTime(pid)
		return errors.Is(err, attest.ErrRejected)
	}, 10*time.Second, 10*time.Millisecond)

	// Reaped: the PID names no process.
	_ = cmd.Wait()
	_, err = a.Attest(t.Context(), attest.Workload{PID: pid})
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "does not exist")
	_, err = a.StartTime(pid)
	require.ErrorIs(t, err, attest.ErrRejected)
}

func TestAttestRejectsReusedPID(t *testing.T) {
	a := newAttestor(t, Config{SkipHash: true})
	cmd := startSleeper(t)
	pid := cmd.Process.Pid

	start, err := a.StartTime(pid)
	require.NoError(t, err)
	require.NotZero(t, start)

	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, StartTime: start})
	require.NoError(t, err, "the recorded start time matches")

	// A process that took over the PID started later than the one recorded
	// when the connection was accepted.
	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, StartTime: start - 1})
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "the PID was reused")
}

func TestAttestChecksCredentials(t *testing.T) {
	// The kernel reported other IDs for the connection than the process now
	// has: it changed them, or it is not the process that connected.
	a := newAttestor(t, Config{SkipHash: true})
	for _, c := range []attest.Credentials{
		{UID: os.Geteuid() + 1, GID: os.Getegid()},
		{UID: os.Geteuid(), GID: os.Getegid() + 1},
		{UID: -1, GID: -1},
	} {
		w := self()
		w.Credentials = &c
		_, err := a.Attest(t.Context(), w)
		require.ErrorIs(t, err, attest.ErrRejected, "%+v", c)
		assert.ErrorContains(t, err, "but connected as")
	}
}

func TestAttestPIDFD(t *testing.T) {
	a := newAttestor(t, Config{SkipHash: true})
	cmd := startSleeper(t)
	pid := cmd.Process.Pid

	pidfd, err := OpenPIDFD(pid)
	require.NoError(t, err)
	defer pidfd.Close()

	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd})
	require.NoError(t, err)

	// A pidfd for another process is a mistake by the caller.
	_, err = a.Attest(t.Context(), attest.Workload{PID: os.Getpid(), PIDFD: pidfd})
	require.ErrorContains(t, err, fmt.Sprintf("pidfd refers to process %d, not %d", pid, os.Getpid()))

	// Not a pidfd at all.
	_, err = a.Attest(t.Context(), attest.Workload{PID: os.Getpid(), PIDFD: os.Stdin})
	require.ErrorContains(t, err, "not a pidfd")

	// Once the process exits the pidfd says so, reaped or not.
	require.NoError(t, cmd.Process.Kill())
	require.Eventually(t, func() bool {
		_, err := a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd})
		return err != nil
	}, 10*time.Second, 10*time.Millisecond)
	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd})
	require.ErrorIs(t, err, attest.ErrRejected)
	_ = cmd.Wait()
	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd})
	require.ErrorIs(t, err, attest.ErrRejected)

	_, err = OpenPIDFD(pid)
	require.ErrorIs(t, err, attest.ErrRejected)
	_, err = OpenPIDFD(0)
	require.Error(t, err)

	closed, err := OpenPIDFD(os.Getpid())
	require.NoError(t, err)
	require.NoError(t, closed.Close())
	_, err = a.Attest(t.Context(), attest.Workload{PID: os.Getpid(), PIDFD: closed})
	require.Error(t, err)
}

func TestPeerPIDFD(t *testing.T) {
	dir, err := os.MkdirTemp("", "wl")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	lis, err := net.Listen("unix", filepath.Join(dir, "s"))
	require.NoError(t, err)
	defer lis.Close()

	client, err := net.Dial("unix", lis.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := lis.Accept()
	require.NoError(t, err)
	defer server.Close()

	pidfd, err := PeerPIDFD(server.(*net.UnixConn))
	if err != nil && errors.Is(err, syscall.ENOPROTOOPT) {
		t.Skip("kernel has no SO_PEERPIDFD")
	}
	require.NoError(t, err)
	defer pidfd.Close()

	got, err := newAttestor(t, Config{SkipHash: true}).Attest(t.Context(), attest.Workload{PID: os.Getpid(), PIDFD: pidfd})
	require.NoError(t, err)
	assert.True(t, got.Contains(unixSel("uid:"+strconv.Itoa(os.Geteuid()))))

	// A closed connection has no descriptor to ask.
	require.NoError(t, server.Close())
	_, err = PeerPIDFD(server.(*net.UnixConn))
	require.Error(t, err)
}

func TestAttestInvalid(t *testing.T) {
	a := newAttestor(t, Config{})
	for _, pid := range []int{0, -1} {
		_, err := a.Attest(t.Context(), attest.Workload{PID: pid})
		require.ErrorContains(t, err, "is not a process")
		require.NotErrorIs(t, err, attest.ErrRejected)
		_, err = a.StartTime(pid)
		require.ErrorContains(t, err, "is not a process")
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := a.Attest(ctx, self())
	require.ErrorIs(t, err, context.Canceled)

	_, err = newAttestor(t, Config{ProcRoot: filepath.Join(t.TempDir(), "file")}).Attest(t.Context(), self())
	require.ErrorIs(t, err, attest.ErrRejected, "a missing /proc/<pid> means no such process")
}

// TestProcDirStaysBound checks the property Attest relies on: once the
// process of an open /proc/<pid> directory is gone, reads through the
// directory fail instead of reaching whatever process gets the PID next.
func TestProcDirStaysBound(t *testing.T) {
	a := newAttestor(t, Config{})
	cmd := startSleeper(t)
	dir, err := openProcDir(a.procRoot, cmd.Process.Pid)
	require.NoError(t, err)
	defer sys.Close(dir)
	_, err = readStat(dir)
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	_, err = readStat(dir)
	require.Error(t, err)
	assert.True(t, errors.Is(err, sys.ENOENT) || errors.Is(err, sys.ESRCH), "%v", err)

	// explain turns any failure into a rejection once the process is gone.
	err = a.explain(cmd.Process.Pid, dir, errors.New("unix: short read"))
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "short read")
}

// Property: the PID of a pidfd is the same whether asked of the pidfd
// (PIDFD_GET_INFO) or read from fdinfo, for a live process, an exited
// one not yet reaped, and a reaped one (-1); neither takes a file that is
// no pidfd for one.
func TestPIDFDPID(t *testing.T) {
	cmd := startSleeper(t)
	pid := cmd.Process.Pid
	pidfd, err := OpenPIDFD(pid)
	require.NoError(t, err)
	defer pidfd.Close()
	fd := int(pidfd.Fd())
	if err := sys.IoctlPidfdInfo(fd, &sys.PidfdInfo{Mask: sys.PIDFD_INFO_PID}); err != nil {
		t.Logf("this kernel has no PIDFD_GET_INFO (%v): both ways read fdinfo", err)
	}

	both := func() (int, int) {
		t.Helper()
		viaIoctl, err := pidfdPID(fd)
		require.NoError(t, err)
		viaFdinfo, err := pidfdPIDFromFdinfo(fd)
		require.NoError(t, err)
		return viaIoctl, viaFdinfo
	}
	got, want := both()
	assert.Equal(t, pid, got)
	assert.Equal(t, want, got)

	require.NoError(t, cmd.Process.Kill())
	require.Eventually(t, func() bool { return pidfdAlive(attest.Workload{PID: pid, PIDFD: pidfd}) != nil },
		10*time.Second, 10*time.Millisecond, "the pidfd tells of the exit")
	got, want = both()
	assert.Equal(t, pid, got, "exited, not reaped")
	assert.Equal(t, want, got)

	_ = cmd.Wait()
	got, want = both()
	assert.Equal(t, -1, got, "reaped")
	assert.Equal(t, want, got)

	_, err = pidfdPID(int(os.Stdin.Fd()))
	require.ErrorContains(t, err, "not a pidfd")
	_, err = pidfdPIDFromFdinfo(int(os.Stdin.Fd()))
	require.ErrorContains(t, err, "not a pidfd")
}

// Property: with a pidfd, the effective IDs come from the pidfd when no
// entry could select a supplementary group, and then status is not read
// and no supplementary group is described; the selectors are otherwise
// those read from status. The IDs the process connected with are checked
// against them all the same.
func TestAttestPIDFDCreds(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	uid, gid, groups := os.Geteuid(), os.Getegid(), []string{}
	if os.Geteuid() == 0 {
		// Another user than the test's, with groups of its own.
		uid, gid = 4321, 8765
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4321, Gid: 8765, Groups: []uint32{42, 43}}}
		groups = []string{"42", "43"}
	} else {
		t.Log("not root: the process runs as the test's user")
	}
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := cmd.Process.Pid
	pidfd, err := OpenPIDFD(pid)
	require.NoError(t, err)
	defer pidfd.Close()
	info := sys.PidfdInfo{Mask: sys.PIDFD_INFO_PID | sys.PIDFD_INFO_CREDS}
	err = sys.IoctlPidfdInfo(int(pidfd.Fd()), &info)
	told := err == nil && info.Mask&sys.PIDFD_INFO_CREDS != 0
	if !told {
		t.Logf("this kernel's pidfds tell no IDs (%v): status is read either way", err)
	}
	a := newAttestor(t, Config{SkipHash: true})
	var asked []string
	noGroups := func(typ, kind string) bool {
		asked = append(asked, kind)
		return kind != "supplementary_gid" && kind != "supplementary_group"
	}
	creds := &attest.Credentials{UID: uid, GID: gid}

	fromStatus, err := a.Attest(t.Context(), attest.Workload{PID: pid, Credentials: creds})
	require.NoError(t, err)
	assert.True(t, fromStatus.Contains(unixSel("uid:"+strconv.Itoa(uid))))
	assert.True(t, fromStatus.Contains(unixSel("gid:"+strconv.Itoa(gid))))
	var wantGroups []string
	for _, s := range fromStatus.Slice() {
		if v, ok := strings.CutPrefix(s.Value, "supplementary_gid:"); ok {
			wantGroups = append(wantGroups, v)
		}
	}
	assert.ElementsMatch(t, groups, wantGroups)

	fromPIDFD, err := a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd, Credentials: creds, Needed: noGroups})
	require.NoError(t, err)
	assert.Contains(t, asked, "supplementary_gid")
	var rest []attest.Selector
	for _, s := range fromStatus.Slice() {
		if !strings.HasPrefix(s.Value, "supplementary_") {
			rest = append(rest, s)
		}
	}
	if told {
		assert.Equal(t, rest, fromPIDFD.Slice(), "the status selectors but the supplementary groups")
	} else {
		assert.Equal(t, fromStatus.Slice(), fromPIDFD.Slice())
	}

	all, err := a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd, Credentials: creds, Needed: func(string, string) bool { return true }})
	require.NoError(t, err)
	assert.Equal(t, fromStatus.Slice(), all.Slice(), "a supplementary group may be selected: status is read")

	_, err = a.Attest(t.Context(), attest.Workload{PID: pid, PIDFD: pidfd, Credentials: &attest.Credentials{UID: uid + 1, GID: gid}, Needed: noGroups})
	require.ErrorIs(t, err, attest.ErrRejected)
	assert.ErrorContains(t, err, "but connected as")
}
