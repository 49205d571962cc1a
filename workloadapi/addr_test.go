//go:build !windows

package workloadapi

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The table of workload-api.md section A (WE rule 8).
func TestTargetFromAddress(t *testing.T) {
	tests := []struct {
		name, addr, target, err string
	}{
		{name: "unix with empty authority", addr: "unix:///run/spire/agent.sock", target: "unix:///run/spire/agent.sock"},
		{name: "unix without authority", addr: "unix:/run/spire/agent.sock", target: "unix:///run/spire/agent.sock"},
		{name: "unix scheme is case-insensitive", addr: "UNIX:///run/wl.sock", target: "unix:///run/wl.sock"},
		// [ours] WE rule 8: no authority; go-spiffe accepts both.
		{name: "unix with authority", addr: "unix://run/sock", err: "workloadapi: workload endpoint unix socket URI must not include an authority"},
		{name: "unix with host authority", addr: "unix://host/run/sock", err: "workloadapi: workload endpoint unix socket URI must not include an authority"},
		{name: "unix relative", addr: "unix:relative.sock", err: "workloadapi: workload endpoint unix socket URI must not be opaque"},
		{name: "unix no path", addr: "unix://", err: "workloadapi: workload endpoint unix socket URI must include a path"},
		{name: "unix query", addr: "unix:///run/wl.sock?x=1", err: "workloadapi: workload endpoint unix socket URI must not include query values"},
		{name: "unix empty query", addr: "unix:///run/wl.sock?", err: "workloadapi: workload endpoint unix socket URI must not include query values"},
		{name: "unix fragment", addr: "unix:///run/wl.sock#f", err: "workloadapi: workload endpoint unix socket URI must not include a fragment"},
		{name: "unix empty fragment", addr: "unix:///run/wl.sock#", err: "workloadapi: workload endpoint unix socket URI must not include a fragment"},
		{name: "unix user info", addr: "unix://user@/run/wl.sock", err: "workloadapi: workload endpoint unix socket URI must not include user info"},
		{name: "tcp IPv4", addr: "tcp://127.0.0.1:8000", target: "127.0.0.1:8000"},
		{name: "tcp IPv6", addr: "tcp://[::1]:8000", target: "[::1]:8000"},
		{name: "tcp name", addr: "tcp://localhost:8000", err: "workloadapi: workload endpoint tcp socket URI host component must be an IP:port"},
		{name: "tcp no port", addr: "tcp://127.0.0.1", err: "workloadapi: workload endpoint tcp socket URI host component must include a port"},
		{name: "tcp empty port", addr: "tcp://127.0.0.1:", err: "workloadapi: workload endpoint tcp socket URI host component must include a port"},
		{name: "tcp root path", addr: "tcp://127.0.0.1:8000/", err: "workloadapi: workload endpoint tcp socket URI must not include a path"},
		{name: "tcp path", addr: "tcp://127.0.0.1:8000/foo", err: "workloadapi: workload endpoint tcp socket URI must not include a path"},
		{name: "tcp user info", addr: "tcp://user@127.0.0.1:8000", err: "workloadapi: workload endpoint tcp socket URI must not include user info"},
		{name: "tcp query", addr: "tcp://1.2.3.4:5?x", err: "workloadapi: workload endpoint tcp socket URI must not include query values"},
		{name: "tcp fragment", addr: "tcp://1.2.3.4:5#x", err: "workloadapi: workload endpoint tcp socket URI must not include a fragment"},
		{name: "tcp opaque", addr: "tcp:opaque", err: "workloadapi: workload endpoint tcp socket URI must not be opaque"},
		{name: "tcp no host", addr: "tcp://:8000", err: "workloadapi: workload endpoint tcp socket URI host component must be an IP:port"},
		{name: "tcp empty authority", addr: "tcp://", err: "workloadapi: workload endpoint tcp socket URI must include a host"},
		// [ours] ports 0 and above 65535 are invalid; go-spiffe accepts them.
		{name: "tcp port too big", addr: "tcp://127.0.0.1:99999", err: "workloadapi: workload endpoint tcp socket URI port must be between 1 and 65535"},
		{name: "tcp port zero", addr: "tcp://127.0.0.1:0", err: "workloadapi: workload endpoint tcp socket URI port must be between 1 and 65535"},
		{name: "tcp max port", addr: "tcp://127.0.0.1:65535", target: "127.0.0.1:65535"},
		{name: "no scheme", addr: "/run/spire/agent.sock", err: ErrInvalidEndpointScheme.Error()},
		{name: "http scheme", addr: "http://127.0.0.1:8000", err: ErrInvalidEndpointScheme.Error()},
		{name: "word", addr: "blah", err: ErrInvalidEndpointScheme.Error()},
		// Named pipes are Windows' own, as in go-spiffe.
		{name: "npipe elsewhere than on Windows", addr: "npipe:agent", err: ErrInvalidEndpointScheme.Error()},
		{name: "not a URI", addr: "unix://%zz", err: "workloadapi: workload endpoint socket is not a valid URI: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target, err := TargetFromAddress(tt.addr)
			verr := ValidateAddress(tt.addr)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				assert.Equal(t, err, verr)
				return
			}
			require.NoError(t, err)
			assert.NoError(t, verr)
			assert.Equal(t, tt.target, target)
		})
	}
}

func TestGetDefaultAddress(t *testing.T) {
	t.Setenv(SocketEnv, "unix:///run/x.sock")
	addr, ok := GetDefaultAddress()
	assert.True(t, ok)
	assert.Equal(t, "unix:///run/x.sock", addr)
}
