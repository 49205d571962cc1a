//go:build !linux

package admin

import (
	"errors"
	"syscall"
)

// peerCredentials is only implemented on Linux (SO_PEERCRED). Elsewhere
// every caller is refused: the server fails closed.
func peerCredentials(syscall.Conn) (pid, uid int, err error) {
	return 0, 0, errors.New("admin: peer credentials are only available on linux")
}
