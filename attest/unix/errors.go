package unix

import (
	"errors"
	"fmt"

	"github.com/spiffekit/spiffekit/attest"
)

// ErrNotSupported is returned by [New], [Peer], [OpenPIDFD], [PeerPIDFD]
// and [Attestor.StartTime] on platforms other than Linux, where the attestor has
// no implementation.
var ErrNotSupported = errors.New("unix: workload attestation is only supported on Linux")

// rejected returns an error wrapping attest.ErrRejected, and cause if any.
func rejected(pid int, why string, cause error) error {
	if cause != nil {
		return fmt.Errorf("unix: process %d %s: %w: %w", pid, why, attest.ErrRejected, cause)
	}
	return fmt.Errorf("unix: process %d %s: %w", pid, why, attest.ErrRejected)
}
