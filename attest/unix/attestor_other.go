//go:build !linux

package unix

import (
	"context"
	"os"
	"syscall"

	"github.com/spiffekit/spiffekit/attest"
)

const supported = false

// StartTime returns [ErrNotSupported]: process start times are read from
// Linux's proc filesystem.
func (a *Attestor) StartTime(pid int) (uint64, error) { return 0, ErrNotSupported }

func (a *Attestor) attest(context.Context, attest.Workload) (attest.Selectors, error) {
	return attest.Selectors{}, ErrNotSupported
}

// OpenPIDFD returns [ErrNotSupported]: pidfds exist on Linux only.
func OpenPIDFD(pid int) (*os.File, error) { return nil, ErrNotSupported }

// Peer returns [ErrNotSupported]: peer processes are described from
// Linux's kernel and proc filesystem.
func Peer(conn syscall.Conn) (attest.Workload, error) { return attest.Workload{}, ErrNotSupported }

// PeerPIDFD returns [ErrNotSupported]: pidfds exist on Linux only.
func PeerPIDFD(conn syscall.Conn) (*os.File, error) { return nil, ErrNotSupported }
