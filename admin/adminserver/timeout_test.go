package adminserver_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

// stuckStore answers no write until the caller gives up, as a store whose
// database a partition cut off does.
type stuckStore struct{ registry.Store }

func (stuckStore) Create(ctx context.Context, _ registry.Entry) (registry.Entry, error) {
	<-ctx.Done()
	return registry.Entry{}, ctx.Err()
}

// TestRequestTimeout checks that a request whose store does not answer
// fails after Config.RequestTimeout with 503, the code "unavailable" and a
// message that says what happened, for a single write and for each entry
// of a batch, instead of leaving the caller waiting.
func TestRequestTimeout(t *testing.T) {
	e := admintest.Start(t, func(c *adminserver.Config) {
		c.Entries = stuckStore{c.Entries}
		c.RequestTimeout = 100 * time.Millisecond
	})
	const msg = "admin: the server's stores did not answer within 100ms; is its database reachable?"
	_, err := e.Client.CreateEntry(t.Context(), admintest.Entry("/a", "unix:uid:1"))
	require.EqualError(t, err, msg)

	results, err := e.Client.CreateEntries(t.Context(), []registry.Entry{admintest.Entry("/a", "unix:uid:1"), admintest.Entry("/b", "unix:uid:1")})
	require.NoError(t, err)
	require.Len(t, results, 2)
	for _, r := range results {
		require.EqualError(t, r.Err, msg)
	}

	status, body := admintest.Raw(t, e.Path, http.MethodPost, "/v1/entries",
		strings.NewReader(`{"spiffe_id":"spiffe://example.org/a","parent_id":"spiffe://example.org/agent","selectors":[{"type":"unix","value":"uid:1"}]}`))
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, `"code":"unavailable"`)
	assert.Contains(t, e.Log.String(), "admin: request timed out")

	// Reads that do not touch the stuck writes are served.
	_, err = e.Client.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
}

func TestRequestTimeoutNegative(t *testing.T) {
	cfg := minimalConfig()
	cfg.RequestTimeout = -time.Second
	_, err := adminserver.New(cfg)
	require.EqualError(t, err, "admin: the request timeout must not be negative")
}
