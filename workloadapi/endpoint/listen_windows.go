//go:build windows

package endpoint

import (
	"fmt"
	"net"

	"github.com/Microsoft/go-winio"
)

// DefaultPipeSDDL is the security descriptor of [ListenNamedPipe] when none
// is given: every user may read and write the pipe (each caller is then
// told apart by its process), SYSTEM and the Administrators have full
// control.
const DefaultPipeSDDL = "D:P(A;;GRGW;;;WD)(A;;GA;;;SY)(A;;GA;;;BA)"

// ListenNamedPipe listens on the local named pipe \\.\pipe\NAME, with the
// security descriptor sddl (SDDL; empty means DefaultPipeSDDL). The name
// follows the rules of the client's "npipe:" addresses: elements separated
// by '/' or '\', none empty, "." or "..".
//
// On a named pipe the server learns the caller's process ID from Windows
// (GetNamedPipeClientProcessId); it has no uid or gid, and Windows gives no
// handle that would tell a reused process ID apart, so a Handler should
// read what it needs of the process at once. The workload attestors of
// this module read Linux's /proc: on Windows a Handler attests callers
// itself.
func ListenNamedPipe(name, sddl string) (net.Listener, error) {
	path, err := pipePath(name)
	if err != nil {
		return nil, err
	}
	if sddl == "" {
		sddl = DefaultPipeSDDL
	}
	lis, err := winio.ListenPipe(path, &winio.PipeConfig{SecurityDescriptor: sddl})
	if err != nil {
		return nil, fmt.Errorf("endpoint: %w", err)
	}
	return lis, nil
}
