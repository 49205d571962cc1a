package unix

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	sys "golang.org/x/sys/unix"

	"github.com/spiffekit/spiffekit/attest"
)

// OpenPIDFD opens a pidfd (Linux 5.3 or later) for process pid, to pass as
// [attest.Workload.PIDFD]. Call it as soon as a connection is accepted: the
// pidfd refers to whichever process has the PID at that moment. Prefer
// [PeerPIDFD], which has no such window. The caller closes the file.
func OpenPIDFD(pid int) (*os.File, error) {
	if pid <= 0 {
		return nil, errors.New("unix: PID " + strconv.Itoa(pid) + " is not a process")
	}
	fd, err := sys.PidfdOpen(pid, 0)
	if errors.Is(err, sys.ESRCH) {
		return nil, rejected(pid, "does not exist", nil)
	}
	if err != nil {
		return nil, fmt.Errorf("unix: pidfd_open: %w", err)
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid)), nil
}

// PeerPIDFD returns a pidfd for the process at the other end of a unix
// socket connection (SO_PEERPIDFD, Linux 6.5 or later), for
// [attest.Workload.PIDFD]. The kernel binds it to the process that connected,
// so a PID reused since cannot be mistaken for it. conn is typically a
// *net.UnixConn. The caller closes the file. On older kernels the error wraps
// syscall.ENOPROTOOPT; fall back to [OpenPIDFD].
func PeerPIDFD(conn syscall.Conn) (*os.File, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("unix: %w", err)
	}
	var fd int
	var serr error
	if err := rc.Control(func(s uintptr) {
		fd, serr = sys.GetsockoptInt(int(s), sys.SOL_SOCKET, sys.SO_PEERPIDFD)
	}); err != nil {
		return nil, fmt.Errorf("unix: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("unix: getsockopt SO_PEERPIDFD: %w", serr)
	}
	return os.NewFile(uintptr(fd), "pidfd:peer"), nil
}

// pidfdFacts is what a pidfd told of its process: its PID and, when creds
// is set, its effective user and group IDs.
type pidfdFacts struct {
	pid      int
	uid, gid uint32
	creds    bool
}

// checkPIDFD checks, when w has a pidfd, that it refers to w.PID and that
// the process has not exited.
func checkPIDFD(w attest.Workload) error {
	_, err := inspectPIDFD(w, true, false)
	return err
}

// checkPIDFDCreds is checkPIDFD that also asks the pidfd for the process's
// effective IDs, which kernels before Linux 6.13 do not tell.
func checkPIDFDCreds(w attest.Workload) (pidfdFacts, error) {
	return inspectPIDFD(w, true, true)
}

// pidfdAlive checks, when w has a pidfd, that its process has not exited.
// Once the pidfd is known to refer to w.PID, that is what proves the PID
// still names that process: a PID is not reused while its process lives.
func pidfdAlive(w attest.Workload) error {
	_, err := inspectPIDFD(w, false, false)
	return err
}

// inspectPIDFD checks, when w has a pidfd, that its process has not exited,
// and with checkPID that the pidfd refers to w.PID.
func inspectPIDFD(w attest.Workload, checkPID, creds bool) (pidfdFacts, error) {
	if w.PIDFD == nil {
		return pidfdFacts{}, nil
	}
	rc, err := w.PIDFD.SyscallConn()
	if err != nil {
		return pidfdFacts{}, fmt.Errorf("unix: pidfd: %w", err)
	}
	pf := pidfdFacts{pid: w.PID}
	var exited bool
	var cerr error
	if err := rc.Control(func(fd uintptr) {
		if checkPID {
			if pf, cerr = pidfdInfo(int(fd), creds); cerr != nil {
				return
			}
		}
		// A pidfd becomes readable when its process exits.
		fds := []sys.PollFd{{Fd: int32(fd), Events: sys.POLLIN}}
		var n int
		for {
			n, cerr = sys.Poll(fds, 0)
			if !errors.Is(cerr, sys.EINTR) {
				break
			}
		}
		exited = n > 0 && fds[0].Revents&(sys.POLLIN|sys.POLLHUP) != 0
	}); err != nil {
		return pidfdFacts{}, fmt.Errorf("unix: pidfd: %w", err)
	}
	switch {
	case cerr != nil:
		return pidfdFacts{}, fmt.Errorf("unix: pidfd: %w", cerr)
	case exited || pf.pid == -1:
		return pidfdFacts{}, rejected(w.PID, "has exited (pidfd)", nil)
	case pf.pid != w.PID:
		return pidfdFacts{}, fmt.Errorf("unix: pidfd refers to process %d, not %d", pf.pid, w.PID)
	}
	return pf, nil
}

// pidfdPID returns the PID a pidfd refers to, -1 once the process has been
// reaped.
func pidfdPID(fd int) (int, error) {
	pf, err := pidfdInfo(fd, false)
	return pf.pid, err
}

// pidfdInfo returns what the pidfd fd tells of its process: its PID, -1
// once the process has been reaped, asked of the pidfd itself
// (PIDFD_GET_INFO, Linux 6.13 or later), else read from /proc/self/fdinfo;
// with creds, its effective IDs too when the kernel tells them.
func pidfdInfo(fd int, creds bool) (pidfdFacts, error) {
	info := sys.PidfdInfo{Mask: sys.PIDFD_INFO_PID}
	if creds {
		info.Mask |= sys.PIDFD_INFO_CREDS
	}
	err := sys.IoctlPidfdInfo(fd, &info)
	switch {
	case err == nil && info.Mask&sys.PIDFD_INFO_PID != 0:
		pf := pidfdFacts{pid: int(info.Pid)}
		if creds && info.Mask&sys.PIDFD_INFO_CREDS != 0 {
			pf.uid, pf.gid, pf.creds = info.Euid, info.Egid, true
		}
		return pf, nil
	case errors.Is(err, sys.ESRCH):
		return pidfdFacts{pid: -1}, nil
	case err == nil, errors.Is(err, sys.ENOTTY), errors.Is(err, sys.EINVAL), errors.Is(err, sys.EOPNOTSUPP):
		pid, err := pidfdPIDFromFdinfo(fd)
		return pidfdFacts{pid: pid}, err
	default:
		return pidfdFacts{}, err
	}
}

// pidfdPIDFromFdinfo reads the PID a pidfd refers to from
// /proc/self/fdinfo: -1 once the process has been reaped, and no Pid line
// if fd is not a pidfd.
func pidfdPIDFromFdinfo(fd int) (int, error) {
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
	if err != nil {
		return 0, err
	}
	for line := range bytes.Lines(data) {
		if v, ok := bytes.CutPrefix(line, []byte("Pid:")); ok {
			pid, err := strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("bad Pid line in fdinfo")
			}
			return pid, nil
		}
	}
	return 0, errors.New("not a pidfd")
}
