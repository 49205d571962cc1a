//go:build !linux

package endpoint

import (
	"fmt"
	"runtime"
	"syscall"
)

// peerCredentials is only implemented on Linux (SO_PEERCRED). Elsewhere a
// unix-socket caller cannot be identified, and every RPC answers
// Unavailable.
func peerCredentials(syscall.Conn) (pid, uid, gid int, err error) {
	return 0, 0, 0, fmt.Errorf("endpoint: peer credentials are not supported on %s", runtime.GOOS)
}
