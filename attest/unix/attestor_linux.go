package unix

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

const supported = true

// maxPathSize bounds the executable path read from /proc/<pid>/exe: PATH_MAX
// plus room for the " (deleted)" suffix.
const maxPathSize = 4096 + 16

// hashChunk is how much of the executable is hashed between checks of ctx.
const hashChunk = 1 << 20

// StartTime returns the start time of process pid (field 22 of
// /proc/<pid>/stat, clock ticks after boot). Record it when a connection is
// accepted and pass it as [attest.Workload.StartTime], so that
// [Attestor.Attest] rejects a process that took over the PID later. A process
// that does not exist yields an error wrapping [attest.ErrRejected].
func (a *Attestor) StartTime(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, errors.New("unix: PID " + strconv.Itoa(pid) + " is not a process")
	}
	dir, err := openProcDir(a.procRoot, pid)
	if err != nil {
		return 0, err
	}
	defer sys.Close(dir)
	st, err := readStat(dir)
	if err != nil {
		return 0, a.explain(pid, dir, err)
	}
	if st.exited() {
		return 0, rejected(pid, "has exited", nil)
	}
	return st.startTime, nil
}

func (a *Attestor) attest(ctx context.Context, w attest.Workload) (attest.Selectors, error) {
	dir, err := openProcDir(a.procRoot, w.PID)
	if err != nil {
		return attest.Selectors{}, err
	}
	defer sys.Close(dir)
	f, err := a.inspect(ctx, dir, w)
	if err != nil {
		return attest.Selectors{}, a.explain(w.PID, dir, err)
	}
	return a.selectors(w.PID, f)
}

// openProcDir opens <root>/<pid>. The descriptor stays bound to the
// process that has the PID now; everything else is read relative to it.
func openProcDir(root string, pid int) (int, error) {
	path := filepath.Join(root, strconv.Itoa(pid))
	dir, err := sys.Open(path, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	if errors.Is(err, sys.ENOENT) || errors.Is(err, sys.ESRCH) {
		return -1, rejected(pid, "does not exist", nil)
	}
	if err != nil {
		return -1, fmt.Errorf("unix: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	return dir, nil
}

// inspect reads the facts about the process of dir, checking before and after
// that it is the process w describes.
func (a *Attestor) inspect(ctx context.Context, dir int, w attest.Workload) (facts, error) {
	// With a pidfd, the process is the one it names as long as the pidfd
	// says it is alive, which it is checked to be before and after the
	// reads; without one, its start time and state are read before and
	// after instead.
	var before procStat
	var f facts
	haveStatus := false
	if w.PIDFD != nil {
		// The pidfd can tell the effective IDs, which spares reading
		// status unless an entry could select a supplementary group:
		// those status alone tells.
		var pf pidfdFacts
		var err error
		if w.Needed == nil || w.Needed(SelectorType, "supplementary_gid") || w.Needed(SelectorType, "supplementary_group") {
			err = checkPIDFD(w)
		} else {
			pf, err = checkPIDFDCreds(w)
		}
		if err != nil {
			return facts{}, err
		}
		if pf.creds {
			f.status, haveStatus = procStatus{uid: pf.uid, gid: pf.gid}, true
		}
	} else {
		var err error
		if before, err = readStat(dir); err != nil {
			return facts{}, err
		}
		if before.exited() {
			return facts{}, rejected(w.PID, "has exited", nil)
		}
		if w.StartTime != 0 && before.startTime != w.StartTime {
			return facts{}, rejected(w.PID, fmt.Sprintf("started at %d, not at the recorded %d: the PID was reused", before.startTime, w.StartTime), nil)
		}
	}

	if !haveStatus {
		buf := procBuffers.Get().(*[]byte)
		data, err := readInto(dir, "status", maxStatusSize, *buf)
		if err == nil {
			f.status, err = parseStatus(data) // keeps nothing of data
			if err != nil {
				err = fmt.Errorf("unix: process %d: %w", w.PID, err)
			}
		}
		putProcBuffer(buf, data)
		if err != nil {
			return facts{}, err
		}
	}
	if c := w.Credentials; c != nil && (int64(c.UID) != int64(f.status.uid) || int64(c.GID) != int64(f.status.gid)) {
		return facts{}, rejected(w.PID, fmt.Sprintf("runs as uid %d gid %d, but connected as uid %d gid %d",
			f.status.uid, f.status.gid, c.UID, c.GID), nil)
	}
	var exeID attest.FileID
	if !a.skipExecutable {
		var err error
		if exeID, err = a.readExe(ctx, dir, w, &f); err != nil {
			return facts{}, err
		}
	}

	// The checks after the reads: the same process, still alive.
	if w.PIDFD == nil {
		after, err := readStat(dir)
		if err != nil {
			return facts{}, err
		}
		if after.exited() {
			return facts{}, rejected(w.PID, "exited during attestation", nil)
		}
		if after.startTime != before.startTime {
			return facts{}, rejected(w.PID, "was replaced during attestation", nil)
		}
	}
	if !a.skipExecutable {
		var st sys.Stat_t
		if err := sys.Fstatat(dir, "exe", &st, 0); err != nil {
			return facts{}, fmt.Errorf("unix: %w", &os.PathError{Op: "stat", Path: "exe", Err: err})
		}
		if fileID(&st) != exeID {
			return facts{}, rejected(w.PID, "executed another file during attestation", nil)
		}
	}
	if w.PIDFD != nil {
		if err := pidfdAlive(w); err != nil {
			return facts{}, err
		}
	}
	return f, nil
}

// readExe identifies the executable of the process of dir, checks it is
// the one w recorded, and reads into f what an entry could select of it:
// its path, and its hash (the one costly read). When no entry could
// select either, the executable is only identified, not opened.
func (a *Attestor) readExe(ctx context.Context, dir int, w attest.Workload, f *facts) (attest.FileID, error) {
	hash := !a.skipHash && (w.Needed == nil || w.Needed(SelectorType, "sha256"))
	path := w.Needed == nil || w.Needed(SelectorType, "path")
	var st sys.Stat_t
	var exe *os.File
	if hash || path {
		var err error
		if exe, st, err = openExe(dir, hash); err != nil {
			return attest.FileID{}, err
		}
		defer exe.Close()
	} else if err := sys.Fstatat(dir, "exe", &st, 0); err != nil {
		return attest.FileID{}, fmt.Errorf("unix: %w", &os.PathError{Op: "stat", Path: "exe", Err: err})
	}
	id := fileID(&st)
	if e := w.Executable; e != nil && *e != id {
		if e.IsZero() {
			return attest.FileID{}, rejected(w.PID, "had an executable that could not be identified when it connected", nil)
		}
		return attest.FileID{}, rejected(w.PID, "executes another file than when it connected", nil)
	}
	// The path and the hash are those of the file just identified, read
	// through the same descriptor, whatever the process executes
	// meanwhile.
	var err error
	if path {
		if f.path, err = fdPath(exe); err != nil {
			return attest.FileID{}, err
		}
	}
	if hash {
		if f.sha256, err = a.hashExe(ctx, exe, &st); err != nil {
			return attest.FileID{}, err
		}
	}
	return id, nil
}

// explain turns an error into a rejection when its cause is that the process
// exited: reads of an exited process's files fail or come back empty.
func (a *Attestor) explain(pid int, dir int, err error) error {
	if errors.Is(err, attest.ErrRejected) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st, serr := readStat(dir)
	if errors.Is(serr, sys.ENOENT) || errors.Is(serr, sys.ESRCH) || serr == nil && st.exited() {
		return rejected(pid, "exited during attestation", err)
	}
	// A live user process always has an executable; the link disappears
	// while the process exits, before its state says so, and kernel threads
	// never have one. Either way it is no workload to attest.
	if pe := (*os.PathError)(nil); errors.As(err, &pe) && pe.Path == "exe" && errors.Is(err, sys.ENOENT) {
		return rejected(pid, "has no executable: it is exiting or a kernel thread", err)
	}
	return err
}

// procBuffers holds buffers for the /proc files the attestor parses and
// lets go of (stat, status): an attestation reads three, and allocated
// several kilobytes for them.
var procBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledBuffer bounds the buffers kept in procBuffers: a status file
// with many supplementary groups is read into a buffer of its own.
const maxPooledBuffer = 64 << 10

// putProcBuffer returns to procBuffers buf, grown to data if it was.
func putProcBuffer(buf *[]byte, data []byte) {
	if cap(data) > maxPooledBuffer {
		return
	}
	if cap(data) > cap(*buf) {
		*buf = data[:0]
	}
	procBuffers.Put(buf)
}

// readInto reads name under dir into buf, grown if it must be, and returns
// what it read, failing if it is longer than limit. It reads with the
// system calls alone: no *os.File to make and finalize for each file.
func readInto(dir int, name string, limit int, buf []byte) ([]byte, error) {
	fd, err := sys.Openat(dir, name, sys.O_RDONLY|sys.O_CLOEXEC|sys.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("unix: %w", &os.PathError{Op: "openat", Path: name, Err: err})
	}
	defer sys.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := sys.Read(fd, buf[len(buf):min(cap(buf), limit+1)])
		switch {
		case errors.Is(err, sys.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("unix: %w", &os.PathError{Op: "read", Path: name, Err: err})
		case n == 0:
			return buf, nil
		}
		if buf = buf[:len(buf)+n]; len(buf) > limit {
			return nil, fmt.Errorf("unix: %s is larger than %d bytes", name, limit)
		}
	}
}

// readFile reads name under dir, failing if it is longer than limit.
func readFile(dir int, name string, limit int64) ([]byte, error) {
	f, err := openAt(dir, name, sys.O_NOFOLLOW)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("unix: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("unix: %s is larger than %d bytes", f.Name(), limit)
	}
	return data, nil
}

func openAt(dir int, name string, flags int) (*os.File, error) {
	fd, err := sys.Openat(dir, name, sys.O_RDONLY|sys.O_CLOEXEC|flags, 0)
	if err != nil {
		return nil, fmt.Errorf("unix: %w", &os.PathError{Op: "openat", Path: name, Err: err})
	}
	return os.NewFile(uintptr(fd), name), nil
}

func readStat(dir int) (procStat, error) {
	buf := procBuffers.Get().(*[]byte)
	data, err := readInto(dir, "stat", maxStatSize, *buf)
	var st procStat
	if err == nil {
		st, err = parseStat(data) // keeps nothing of data
		if err != nil {
			err = fmt.Errorf("unix: %w", err)
		}
	}
	putProcBuffer(buf, data)
	return st, err
}

// openExe opens the file the process of dir executes, through
// /proc/<pid>/exe, which reaches it even if its path now names another
// file, and returns it with its status: for reading when read is set,
// else only to refer to it (O_PATH), which takes no read permission.
func openExe(dir int, read bool) (*os.File, sys.Stat_t, error) {
	var st sys.Stat_t
	mode := sys.O_PATH
	if read {
		mode = sys.O_RDONLY
	}
	fd, err := sys.Openat(dir, "exe", mode|sys.O_CLOEXEC, 0)
	if err != nil {
		return nil, st, fmt.Errorf("unix: %w", &os.PathError{Op: "openat", Path: "exe", Err: err})
	}
	if err := sys.Fstat(fd, &st); err != nil {
		sys.Close(fd)
		return nil, st, fmt.Errorf("unix: %w", &os.PathError{Op: "fstat", Path: "exe", Err: err})
	}
	return os.NewFile(uintptr(fd), "exe"), st, nil
}

// fdPath returns the path of the file open as f, as the kernel names it
// (the same text as /proc/<pid>/exe shows for the process executing it).
func fdPath(f *os.File) (string, error) {
	buf := make([]byte, maxPathSize+1)
	n, err := sys.Readlink(selfFD(f), buf)
	if err != nil {
		return "", fmt.Errorf("unix: %w", &os.PathError{Op: "readlink", Path: "exe", Err: err})
	}
	if n > maxPathSize {
		return "", fmt.Errorf("unix: executable path is longer than %d bytes", maxPathSize)
	}
	if n == 0 || bytes.IndexByte(buf[:n], 0) >= 0 {
		return "", errors.New("unix: executable path is empty or contains NUL")
	}
	return string(buf[:n]), nil
}

// selfFD names f in this process's /proc/self/fd.
func selfFD(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// hashExe returns the hex SHA-256 of exe, the executable as openExe
// returned it (open for reading) with its status st: remembered from an
// earlier attestation of the same unchanged file, or read from exe.
func (a *Attestor) hashExe(ctx context.Context, exe *os.File, st *sys.Stat_t) (string, error) {
	if st.Mode&sys.S_IFMT != sys.S_IFREG {
		return "", errors.New("unix: executable is not a regular file")
	}
	if st.Size > a.maxExecutableSize {
		return "", fmt.Errorf("unix: executable is %d bytes, more than the limit of %d", st.Size, a.maxExecutableSize)
	}
	key := statKey(st)
	return a.hashes.sum(ctx, key, func() (string, error) {
		sum, err := hashFile(ctx, exe, a.maxExecutableSize)
		if err != nil {
			return "", err
		}
		// Written to meanwhile: what was read may mix two versions.
		var after sys.Stat_t
		if err := sys.Fstat(int(exe.Fd()), &after); err != nil {
			return "", fmt.Errorf("unix: %w", &os.PathError{Op: "fstat", Path: "exe", Err: err})
		}
		if statKey(&after) != key {
			return "", errors.New("unix: executable changed while it was hashed")
		}
		return sum, nil
	})
}

// statKey is the hash cache's key of the file st describes.
func statKey(st *sys.Stat_t) fileKey {
	return fileKey{
		dev:   uint64(st.Dev), // the field types differ by architecture
		ino:   uint64(st.Ino),
		size:  st.Size,
		mtime: time.Unix(st.Mtim.Unix()),
		ctime: time.Unix(st.Ctim.Unix()),
	}
}

// hashFile returns the hex SHA-256 of f's contents, read from its start,
// failing if it holds more than limit bytes.
func hashFile(ctx context.Context, f *os.File, limit int64) (string, error) {
	h := sha256.New()
	r := io.NewSectionReader(f, 0, limit+1)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := io.CopyN(h, r, hashChunk)
		total += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("unix: hashing executable: %w", err)
		}
	}
	if total > limit {
		// The file grew after the size check.
		return "", fmt.Errorf("unix: executable is more than the limit of %d bytes", limit)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
