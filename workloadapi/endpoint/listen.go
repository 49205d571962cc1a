package endpoint

import (
	"fmt"
	"io/fs"
	"net"

	"github.com/spiffekit/spiffekit/internal/unixsock"
)

// ListenUnix listens on a unix socket at path and sets the socket file's
// permission bits to mode: 0o777 lets every local user reach the endpoint
// (each is then told apart by its credentials), 0o770 only the socket's
// group. A stale socket file left by a server that is gone is removed
// first; a live one is an error, and so is any other kind of file.
//
// Between bind and chmod the socket briefly has the permissions the
// process umask gives; put it in a directory whose own permissions are
// right if that matters. Closing the listener removes the socket file.
// [Server.Serve] closes the listener when it returns.
func ListenUnix(path string, mode fs.FileMode) (*net.UnixListener, error) {
	lis, err := unixsock.Listen(path, mode)
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	return lis, nil
}
