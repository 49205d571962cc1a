//go:build !windows

package kit_test

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spiffekit/spiffekit/conformance/kit"
)

// TestPipeAddressUnsupported: where there are no named pipes, an npipe:
// address is refused with an error that says so, before anything runs.
func TestPipeAddressUnsupported(t *testing.T) {
	for _, addr := range []string{"npipe:spire-agent/public/api", `npipe:spire-agent\public\api`, "NPIPE:x"} {
		_, err := kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: addr})
		assert.ErrorContains(t, err, "Windows named pipe, which "+runtime.GOOS+" does not have", addr)
		_, err = kit.CheckUnregistered(t.Context(), kit.WorkloadConfig{Addr: addr})
		assert.ErrorContains(t, err, "Windows named pipe", addr)
		_, err = kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: addr})
		assert.ErrorContains(t, err, "Windows named pipe", addr)
	}
}
