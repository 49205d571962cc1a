package endpoint

import (
	"fmt"
	"syscall"
)

// peerCredentials reads SO_PEERCRED from a connected unix socket: the pid,
// uid and gid of the process that connected, as the kernel recorded them.
func peerCredentials(sc syscall.Conn) (pid, uid, gid int, err error) {
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("endpoint: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return 0, 0, 0, fmt.Errorf("endpoint: peer credentials: %w", err)
	}
	if credErr != nil {
		return 0, 0, 0, fmt.Errorf("endpoint: peer credentials: %w", credErr)
	}
	return int(cred.Pid), int(cred.Uid), int(cred.Gid), nil
}
