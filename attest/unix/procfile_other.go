//go:build !linux

package unix

import "github.com/spiffekit/spiffekit/attest"

// ReadProcFile returns [ErrNotSupported]: the proc filesystem is Linux's.
func ReadProcFile(procRoot string, w attest.Workload, name string, limit int64) ([]byte, error) {
	return nil, ErrNotSupported
}
