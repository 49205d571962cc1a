//go:build !linux

package unix

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
)

func TestNotSupported(t *testing.T) {
	_, err := New(Config{})
	require.ErrorIs(t, err, ErrNotSupported)
	var a Attestor
	_, err = a.Attest(t.Context(), attest.Workload{PID: 1})
	require.ErrorIs(t, err, ErrNotSupported)
	_, err = a.StartTime(1)
	require.ErrorIs(t, err, ErrNotSupported)
	_, err = OpenPIDFD(1)
	require.ErrorIs(t, err, ErrNotSupported)
	_, err = PeerPIDFD(nil)
	require.ErrorIs(t, err, ErrNotSupported)
	_, err = ReadProcFile("", attest.Workload{PID: 1}, "cgroup", 1)
	require.ErrorIs(t, err, ErrNotSupported)
}
