package unix

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

// fakeProcess writes a /proc/<pid> directory under root in the kernel's
// format, with exe a symlink to a small executable file.
type fakeProcess struct {
	status, stat string
	exe          string // the symlink target; "" writes no exe link
}

// IDs that no test machine names, so no user or group selectors appear.
const (
	fakeUID = 3999001
	fakeGID = 3999002
)

func goodFake(t *testing.T) fakeProcess {
	exe := filepath.Join(t.TempDir(), "workload")
	require.NoError(t, os.WriteFile(exe, []byte("#!/bin/true\n"), 0o755))
	return fakeProcess{
		status: "Name:\tworkload\nUid:\t1\t3999001\t1\t1\nGid:\t2\t3999002\t2\t2\nGroups:\t3999003 3999004\n",
		stat:   "77 (work load) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5555 0 0\n",
		exe:    exe,
	}
}

func (p fakeProcess) write(t *testing.T, root string, pid int) {
	t.Helper()
	dir := filepath.Join(root, strconv.Itoa(pid))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "status"), []byte(p.status), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(p.stat), 0o644))
	if p.exe != "" {
		require.NoError(t, os.Symlink(p.exe, filepath.Join(dir, "exe")))
	}
}

func TestAttestFakeProc(t *testing.T) {
	root := t.TempDir()
	p := goodFake(t)
	p.write(t, root, 77)
	a := newAttestor(t, Config{ProcRoot: root})

	got, err := a.Attest(t.Context(), attest.Workload{PID: 77, StartTime: 5555,
		Credentials: &attest.Credentials{UID: fakeUID, GID: fakeGID}})
	require.NoError(t, err)
	assert.Equal(t, []attest.Selector{
		unixSel("gid:3999002"),
		unixSel("path:" + p.exe),
		unixSel("sha256:" + fileSHA256(t, p.exe)),
		unixSel("supplementary_gid:3999003"),
		unixSel("supplementary_gid:3999004"),
		unixSel("uid:3999001"),
	}, got.Slice())

	start, err := a.StartTime(77)
	require.NoError(t, err)
	assert.Equal(t, uint64(5555), start)
}

func TestAttestFakeProcNames(t *testing.T) {
	// uid and gid 0 are named on every Linux system ("root").
	root := t.TempDir()
	p := goodFake(t)
	p.status = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t0\n"
	p.write(t, root, 78)
	got, err := newAttestor(t, Config{ProcRoot: root, SkipExecutable: true}).Attest(t.Context(), attest.Workload{PID: 78})
	require.NoError(t, err)
	assert.True(t, got.Contains(unixSel("user:root")), got.String())
	assert.True(t, got.Contains(unixSel("group:root")), got.String())
	assert.True(t, got.Contains(unixSel("supplementary_group:root")), got.String())
	assert.True(t, got.Contains(unixSel("supplementary_gid:0")), got.String())
}

func TestAttestFakeProcMalformed(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(*fakeProcess)
		err      string
		rejected bool
	}{
		{name: "status without Uid", edit: func(p *fakeProcess) { p.status = "Gid:\t0\t0\t0\t0\nGroups:\n" }, err: "no Uid line"},
		{name: "status with a bad ID", edit: func(p *fakeProcess) { p.status = strings.Replace(p.status, "3999001", "x", 1) }, err: `bad ID "x"`},
		{name: "status empty", edit: func(p *fakeProcess) { p.status = "" }, err: "no Uid line"},
		{name: "status too large", edit: func(p *fakeProcess) { p.status += strings.Repeat("x", maxStatusSize) }, err: "larger than"},
		{name: "stat truncated", edit: func(p *fakeProcess) { p.stat = "77 (w) S 1 2" }, err: "has 5 fields"},
		{name: "stat garbage", edit: func(p *fakeProcess) { p.stat = "\x00\xff" }, err: "no command name"},
		{name: "stat too large", edit: func(p *fakeProcess) { p.stat += strings.Repeat(" 1", maxStatSize) }, err: "larger than"},
		{name: "zombie", edit: func(p *fakeProcess) { p.stat = strings.Replace(p.stat, ") S ", ") Z ", 1) }, err: "has exited", rejected: true},
		{name: "start time differs", edit: func(p *fakeProcess) { p.stat = strings.Replace(p.stat, "5555", "5556", 1) }, err: "the PID was reused", rejected: true},
		// A process without an executable is exiting or a kernel thread.
		{name: "no exe", edit: func(p *fakeProcess) { p.exe = "" }, err: "openat exe", rejected: true},
		{name: "exe dangling", edit: func(p *fakeProcess) { p.exe = "/nonexistent/x" }, err: "openat exe", rejected: true},
		{name: "exe a directory", edit: func(p *fakeProcess) { p.exe = t.TempDir() }, err: "not a regular file"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			p := goodFake(t)
			tt.edit(&p)
			pid := 100 + i
			p.write(t, root, pid)
			_, err := newAttestor(t, Config{ProcRoot: root}).Attest(t.Context(), attest.Workload{PID: pid, StartTime: 5555})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			assert.True(t, strings.HasPrefix(err.Error(), "unix: "), err.Error())
			assert.Equal(t, tt.rejected, errors.Is(err, attest.ErrRejected), err.Error())
		})
	}
}

func TestStartTimeFakeProc(t *testing.T) {
	root := t.TempDir()
	p := goodFake(t)
	p.stat = "9 (x) S 1"
	p.write(t, root, 9)
	a := newAttestor(t, Config{ProcRoot: root})
	_, err := a.StartTime(9)
	require.ErrorContains(t, err, "fields")
	_, err = a.StartTime(10)
	require.ErrorIs(t, err, attest.ErrRejected)
}
