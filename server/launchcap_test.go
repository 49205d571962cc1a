package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/server"
)

// TestLaunchMaxLiveLeavesOutExpired: launches whose expiry has passed no
// longer count toward MaxLive, from their expiry on: not only once the
// server's entry index has taken them out (when it next syncs, after a
// write to the store or at its poll) or the pruner has deleted them.
func TestLaunchMaxLiveLeavesOutExpired(t *testing.T) {
	s := startLaunchServer(t, func(c *server.Config) { c.Launcher.Service.MaxLive = 2 })
	s.launch(t, "/sandbox/a", `, "ttl": "10s"`)
	s.launch(t, "/sandbox/b", `, "ttl": "10s"`)
	_, err := s.Node().Index().Sync(t.Context())
	require.NoError(t, err)
	r := s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/c"}`)
	require.Equal(t, http.StatusServiceUnavailable, r.status, "MaxLive launches are alive")

	s.clock.Add(10 * time.Second)
	r = s.call(t, http.MethodPost, "/v1/launches", `{"spiffe_id": "spiffe://`+s.TrustDomain().Name()+`/sandbox/c"}`)
	assert.Equal(t, http.StatusCreated, r.status, "the two launches have expired: %v", r.body)
}
