//go:build windows

package kit

import "github.com/Microsoft/go-winio"

// Named pipes are dialed as go-spiffe dials them on Windows.
func init() { dialPipe = winio.DialPipeContext }
