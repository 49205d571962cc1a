package kit_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/conformance/kit"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
)

// TestPipeAddressDialed checks that an npipe: address reaches the named
// pipe dialer with the pipe's path, as go-spiffe forms it, and that the
// whole check runs over what it connects to: here a dialer standing in
// for the platform's, connecting to a mutant on a unix socket.
func TestPipeAddressDialed(t *testing.T) {
	t.Cleanup(leaktest.Check(t))
	sock := strings.TrimPrefix(newMutant(t).serve(t), "unix://")
	var mu sync.Mutex
	var paths []string
	t.Cleanup(kit.SetPipeDialer(func(ctx context.Context, path string) (net.Conn, error) {
		mu.Lock()
		paths = append(paths, path)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}))

	r := check(t, kit.WorkloadConfig{Addr: "npipe:spiffe-kit/public/api"})
	assert.Empty(t, r.FailedRules(), "%s", text(t, r))
	assert.Equal(t, kit.NotApplicable, r.Verdicts()["WE rule 2"])
	assert.Contains(t, r.ByRule("WE rule 2")[0].Evidence, "named pipe")
	_, err := kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: `npipe:spiffe-kit\public\api`})
	assert.ErrorContains(t, err, "Unimplemented", "the mutant serves no SDS, but was reached")

	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, paths)
	for _, p := range paths {
		assert.Equal(t, `\\.\pipe\spiffe-kit\public\api`, p)
	}
}

// TestPipeAddressRefusals: a named pipe address that is not npipe:NAME,
// or whose name has an empty, "." or ".." element, is refused before
// anything is dialed.
func TestPipeAddressRefusals(t *testing.T) {
	for _, addr := range []string{"npipe:", "npipe://host/x", "npipe:///x", "npipe:x?q=1", "npipe:x#f", "npipe:x?",
		"npipe:a//b", "npipe:../x", `npipe:a\.\b`, "npipe:a/"} {
		_, err := kit.CheckWorkloadAPI(t.Context(), kit.WorkloadConfig{Addr: addr})
		assert.ErrorContains(t, err, "npipe", addr)
		_, err = kit.CheckSDS(t.Context(), kit.SDSConfig{Addr: addr})
		assert.ErrorContains(t, err, "npipe", addr)
	}
}
