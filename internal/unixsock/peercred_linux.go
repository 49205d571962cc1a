package unixsock

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerCredentials reads SO_PEERCRED from a connected unix socket: the pid
// and uid of the process that connected, as the kernel recorded them when
// it called connect. A process cannot forge them. Errors do not name the
// caller; callers prefix them.
func PeerCredentials(sc syscall.Conn) (pid, uid int, err error) {
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, 0, fmt.Errorf("peer credentials: %w", err)
	}
	if credErr != nil {
		return 0, 0, fmt.Errorf("peer credentials: %w", credErr)
	}
	return int(cred.Pid), int(cred.Uid), nil
}
