package agent_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spiffekit/spiffekit/internal/testing/nodetest"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/workloadapi"
)

// Property: an agent started again from its saved SVID without its saved
// workload SVIDs (lost, or refused) holds no entries until it syncs:
// meanwhile (its server away) a workload is told to retry (Unavailable),
// not that it has no identity (PermissionDenied), which would make it drop
// the one it holds; once the server is back, the workload is served.
func TestRestartedAgentTellsWorkloadsToRetryUntilSynced(t *testing.T) {
	store := memstore.New(memstore.Config{})
	m := newRotation(t)
	s := nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store})
	cfg := s.AgentConfig(t)
	cfg.DataDir = t.TempDir()
	a := nodetest.StartAgent(t, cfg)
	web := s.Register(t, a.ID(), "/web")
	a.WaitSVID(t, web.SPIFFEID)
	require.NoError(t, a.Stop())
	s.Stop()
	require.NoError(t, os.Remove(filepath.Join(cfg.DataDir, "workload-svids.bin")))

	b := nodetest.StartAgent(t, cfg) // from the saved SVID: the join token is spent
	for range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr(b.Addr))
		cancel()
		require.Error(t, err)
		assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	}

	nodetest.StartNodeServer(t, nodetest.NodeConfig{CA: m, Store: store, Addr: s.Addr})
	assert.Equal(t, web.SPIFFEID, b.WaitSVID(t, web.SPIFFEID).ID)
}
