package unix

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

// Peer describes the process at the other end of a unix socket
// connection, as a Workload API server records it the moment it accepts
// the connection, so that [Attestor.Attest] can later check that it
// inspects that process, still running the same executable:
//
//   - PID and Credentials: what the kernel recorded of the process that
//     connected (SO_PEERCRED);
//   - PIDFD: bound by the kernel to that process (SO_PEERPIDFD, Linux 6.5
//     or later), else opened now ([OpenPIDFD], Linux 5.3 or later), else
//     nil;
//   - StartTime: the process's start time, read now;
//   - Executable: the identity of the file the process executes now. It is
//     the zero [attest.FileID] when that cannot be read (the server may not
//     inspect the process, or it is exiting), and then Attest describes no
//     executable for the workload: it rejects it unless
//     Config.SkipExecutable.
//
// It reads the proc filesystem at [DefaultProcRoot]; an Attestor whose
// Config.ProcRoot is elsewhere must see the same processes there. conn is
// typically a *net.UnixConn. The caller owns the returned PIDFD and closes
// it when the connection closes.
//
// A peer in a PID namespace the server does not see has PID 0, and nothing
// else is recorded (no attestor accepts it). Peer fails when the kernel
// reports no credentials for conn. When the
// process that connected has already exited, the error wraps
// [attest.ErrRejected]: whoever holds the connection now is not that
// process. On an error after SO_PEERCRED, the returned Workload still
// holds PID and Credentials, without PIDFD.
func Peer(conn syscall.Conn) (attest.Workload, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return attest.Workload{}, fmt.Errorf("unix: %w", err)
	}
	var cred *sys.Ucred
	var credErr, pidfdErr error
	pidfd := -1
	if err := rc.Control(func(s uintptr) {
		if cred, credErr = sys.GetsockoptUcred(int(s), sys.SOL_SOCKET, sys.SO_PEERCRED); credErr != nil {
			return
		}
		pidfd, pidfdErr = sys.GetsockoptInt(int(s), sys.SOL_SOCKET, sys.SO_PEERPIDFD)
	}); err != nil {
		return attest.Workload{}, fmt.Errorf("unix: %w", err)
	}
	if credErr != nil {
		return attest.Workload{}, fmt.Errorf("unix: getsockopt SO_PEERCRED: %w", credErr)
	}
	w := attest.Workload{
		PID:         int(cred.Pid),
		Credentials: &attest.Credentials{UID: int(cred.Uid), GID: int(cred.Gid)},
	}
	if w.PID <= 0 {
		// A peer outside the server's PID namespace has PID 0 here:
		// there is no process to record, and none to attest.
		if pidfdErr == nil {
			sys.Close(pidfd)
		}
		return w, nil
	}
	switch {
	case pidfdErr == nil:
		w.PIDFD = os.NewFile(uintptr(pidfd), "pidfd:"+strconv.Itoa(w.PID))
	case errors.Is(pidfdErr, sys.EINVAL):
		// The kernel knows the process that connected, and that it has
		// been reaped (Linux 6.5 to 6.15; later ones give a pidfd that
		// says so): whatever has its PID now is another process.
		return w, rejected(w.PID, "exited before its connection was accepted", nil)
	}
	// Otherwise (ENOPROTOOPT before Linux 6.5) record opens one.
	return record(DefaultProcRoot, w)
}

// record completes w, which holds the PID and Credentials of a process
// that has just connected, with a pidfd if it has none, its start time
// and its executable's identity, read from the proc filesystem at root.
func record(root string, w attest.Workload) (attest.Workload, error) {
	gone := func(why string, cause error) (attest.Workload, error) {
		if w.PIDFD != nil {
			w.PIDFD.Close()
			w.PIDFD = nil
		}
		return w, rejected(w.PID, why, cause)
	}
	if w.PIDFD == nil {
		// Without SO_PEERPIDFD, a pidfd opened now binds the process that
		// has the PID now; the PID could only have been reused since the
		// connection if its process exited first.
		f, err := OpenPIDFD(w.PID)
		switch {
		case errors.Is(err, attest.ErrRejected):
			return gone("exited before its connection was accepted", nil)
		case err == nil:
			w.PIDFD = f
		}
		// Any other error (ENOSYS before Linux 5.3): no pidfd.
	}
	dir, err := openProcDir(root, w.PID)
	if err != nil {
		if w.PIDFD != nil && checkPIDFD(w) == nil {
			// Alive, but not to be seen in this proc filesystem (none is
			// mounted, or it hides other users' processes): an attestor
			// that reads it fails on its own.
			return w, nil
		}
		if errors.Is(err, attest.ErrRejected) {
			return gone("exited before its connection was accepted", nil)
		}
		return w, nil
	}
	defer sys.Close(dir)
	st, err := readStat(dir)
	switch {
	case err == nil && st.exited():
		return gone("exited before its connection was accepted", nil)
	case err == nil:
		w.StartTime = st.startTime
	}
	var exe sys.Stat_t
	w.Executable = &attest.FileID{}
	if err := sys.Fstatat(dir, "exe", &exe, 0); err == nil {
		*w.Executable = fileID(&exe)
	}
	// The reads above went through /proc/<pid>, which named the pidfd's
	// process if that process is still alive now.
	if err := checkPIDFD(w); errors.Is(err, attest.ErrRejected) {
		return gone("exited before its connection was accepted", err)
	} else if err != nil {
		w.PIDFD.Close()
		w.PIDFD = nil
		return w, err
	}
	return w, nil
}

// fileID returns the identity of the file st describes.
func fileID(st *sys.Stat_t) attest.FileID {
	return attest.FileID{Dev: uint64(st.Dev), Ino: uint64(st.Ino)} // the field types differ by architecture
}
