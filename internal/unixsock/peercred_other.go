//go:build !linux

package unixsock

import (
	"errors"
	"syscall"
)

// PeerCredentials is only implemented on Linux (SO_PEERCRED). Elsewhere it
// always fails, so that servers that authorize callers by uid fail closed.
func PeerCredentials(syscall.Conn) (pid, uid int, err error) {
	return 0, 0, errors.New("peer credentials are only available on linux")
}
