//go:build !windows

package endpoint

import (
	"errors"
	"net"
)

// ErrNamedPipesUnsupported is returned by ListenNamedPipe on systems other
// than Windows.
var ErrNamedPipesUnsupported = errors.New("endpoint: named pipes exist on Windows only; listen on a unix socket (ListenUnix)")

// ListenNamedPipe listens on a Windows named pipe; on this system it
// returns ErrNamedPipesUnsupported. See its Windows documentation.
func ListenNamedPipe(name, sddl string) (net.Listener, error) {
	if _, err := pipePath(name); err != nil {
		return nil, err
	}
	return nil, ErrNamedPipesUnsupported
}
