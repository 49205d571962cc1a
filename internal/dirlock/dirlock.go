// Package dirlock locks a data directory for one process at a time: an
// advisory lock (flock(2)) on a lock file inside it, which names the
// holder's pid, so that a second server or agent started on the same
// directory is refused with an error saying who holds it, instead of both
// writing over each other's state.
//
// The lock is the kernel's: it goes with the process, so a crashed holder
// leaves no stale lock behind, only a lock file that the next holder
// reuses. Only processes that take this lock are kept out.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// FileName is the name of the lock file in a locked directory.
const FileName = "lock"

// ErrInUse is wrapped by the error Acquire returns when another holder
// has the directory locked.
var ErrInUse = errors.New("in use")

// Lock is a held lock on a directory. Close releases it.
type Lock struct {
	f    *os.File
	once sync.Once
	err  error
}

// Acquire locks dir, which must exist, for the calling process: it opens
// (creating it, mode 0600) dir/lock, takes an exclusive flock on it
// without waiting, and writes the process's pid into it. When another
// holder has it, whether another process or another open of the same file
// in this one, it fails with an error wrapping ErrInUse that names the
// directory and the holder's pid as the lock file gives it:
// "data directory /x is in use by pid 1234".
func Acquire(dir string) (*Lock, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the data directory: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("data directory %s is %w by %s", dir, ErrInUse, holder(path))
		}
		return nil, fmt.Errorf("locking the data directory %s: %w", dir, err)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the data directory: writing %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// flock takes an exclusive lock on f without waiting, retrying when a
// signal interrupts the call.
func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// holder names the holder of the lock file at path: "pid N", or "another
// process" when the file names none yet (the holder is between taking the
// lock and writing its pid) or cannot be read.
func holder(path string) string {
	b, err := os.ReadFile(path)
	if err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return "pid " + strconv.Itoa(pid)
		}
	}
	return "another process"
}

// Close releases the lock; the lock file stays, emptied of the pid.
// Calling it again does nothing and returns the first call's error. A
// nil Lock is released already.
func (l *Lock) Close() error {
	if l == nil {
		return nil
	}
	l.once.Do(func() {
		_ = l.f.Truncate(0) // a best effort: a stale pid is harmless, the flock decides
		l.err = l.f.Close()
	})
	return l.err
}
