//go:build windows

package endpoint

import (
	"fmt"
	"net"

	"golang.org/x/sys/windows"
)

// identifyOS learns the process ID of a caller on a named pipe from
// Windows; ok is false for any other connection.
func identifyOS(conn net.Conn) (c Caller, ok bool, err error) {
	if conn.LocalAddr() == nil || conn.LocalAddr().Network() != "pipe" {
		return Caller{}, false, nil
	}
	c = Caller{PID: -1, UID: -1, GID: -1, Addr: conn.RemoteAddr()}
	f, isFile := conn.(interface{ Fd() uintptr })
	if !isFile {
		return c, true, fmt.Errorf("%w: %T gives no access to its pipe handle", errUnidentified, conn)
	}
	var pid uint32
	if err := windows.GetNamedPipeClientProcessId(windows.Handle(f.Fd()), &pid); err != nil {
		return c, true, fmt.Errorf("%w: GetNamedPipeClientProcessId: %w", errUnidentified, err)
	}
	c.PID = int(pid)
	return c, true, nil
}
