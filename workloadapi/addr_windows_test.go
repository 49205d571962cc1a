//go:build windows

package workloadapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// On Windows, as in go-spiffe: named pipes and TCP, no unix sockets.
func TestTargetFromAddressWindows(t *testing.T) {
	for _, tt := range []struct{ addr, target, err string }{
		{addr: "npipe:agent", target: `\\.\pipe\agent`},
		{addr: "npipe:spire/agent", target: `\\.\pipe\spire\agent`},
		{addr: "npipe://agent", err: "named pipe URI must be opaque"},
		{addr: "npipe:../agent", err: `must not have empty, "." or ".." elements`},
		{addr: "tcp://127.0.0.1:8000", target: "127.0.0.1:8000"},
		{addr: "unix:///run/agent.sock", err: ErrInvalidEndpointScheme.Error()},
		{addr: `\\.\pipe\agent`, err: ErrInvalidEndpointScheme.Error()},
	} {
		t.Run(tt.addr, func(t *testing.T) {
			target, err := TargetFromAddress(tt.addr)
			if tt.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.err)
				assert.Equal(t, err, ValidateAddress(tt.addr))
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.target, target)
		})
	}
	assert.Contains(t, ErrInvalidEndpointScheme.Error(), `"npipe"`)
}
