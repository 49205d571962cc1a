package endpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
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
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("endpoint: listen: %w", err)
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		lis.Close()
		return nil, fmt.Errorf("endpoint: listen: %w", err)
	}
	return lis, nil
}

func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("endpoint: listen: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("endpoint: listen: %s exists and is not a socket", path)
	}
	conn, err := net.Dial("unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("endpoint: listen: %s is in use", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("endpoint: listen: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("endpoint: listen: %w", err)
	}
	return nil
}
