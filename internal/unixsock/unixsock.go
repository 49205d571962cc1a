// Package unixsock listens on unix sockets the way the kit's servers need:
// a stale socket file left by a server that is gone is removed first, a
// live socket or any other kind of file is refused, and the socket file gets
// the permission bits asked for.
package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
)

// Listen listens on a unix socket at path and sets the socket file's
// permission bits to mode. Between bind and chmod the socket briefly has
// the permissions the process umask gives. Closing the listener removes
// the socket file. Errors do not name the caller; callers prefix them.
func Listen(path string, mode fs.FileMode) (*net.UnixListener, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	lis, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if err := os.Chmod(path, mode.Perm()); err != nil {
		lis.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	return lis, nil
}

// removeStale removes a socket file nobody listens on any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen: %s exists and is not a socket", path)
	}
	conn, err := net.Dial("unix", path)
	if err == nil {
		conn.Close()
		return fmt.Errorf("listen: %s is in use", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}
