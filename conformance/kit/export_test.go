package kit

import (
	"context"
	"net"
)

// SetPipeDialer makes the kit dial named pipes with dial, for the tests,
// and returns what restores the platform's dialer.
func SetPipeDialer(dial func(ctx context.Context, path string) (net.Conn, error)) (restore func()) {
	old := dialPipe
	dialPipe = dial
	return func() { dialPipe = old }
}
