package admin_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

// TestCreateEntriesSplits sends more entries than one request may hold,
// by count and by size: the client splits them, and the results keep the
// order of the entries.
func TestCreateEntriesSplits(t *testing.T) {
	e := admintest.Start(t)
	var in []registry.Entry
	for i := range 2*admin.MaxBatchEntries + 10 {
		in = append(in, admintest.Entry(fmt.Sprintf("/w/%d", i), "unix:uid:1"))
	}
	results, err := e.Client.CreateEntries(t.Context(), in)
	require.NoError(t, err)
	require.Len(t, results, len(in))
	for i, r := range results {
		require.NoError(t, r.Err)
		require.Equal(t, in[i].SPIFFEID, r.Entry.SPIFFEID)
	}
	assert.Equal(t, 3, strings.Count(e.Log.String(), "admin: entry batch done"))

	// Entries of the largest size: fewer of them fit in one request.
	var sels []string
	for i := range registry.MaxSelectors {
		sels = append(sels, fmt.Sprintf("big:%d-%s", i, strings.Repeat("v", attest.MaxValueLength-10)))
	}
	big := make([]registry.Entry, 40)
	for i := range big {
		big[i] = admintest.Entry(fmt.Sprintf("/big/%d", i), sels...)
	}
	results, err = e.Client.CreateEntries(t.Context(), big)
	require.NoError(t, err)
	require.Len(t, results, len(big))
	for _, r := range results {
		require.NoError(t, r.Err)
	}
	batches := strings.Count(e.Log.String(), "admin: entry batch done") - 3
	assert.Greater(t, batches, 1, "40 entries of 512 KiB do not fit in one request")
}

// TestCreateEntriesBadAnswers checks that the client does not trust the
// server's answer blindly.
func TestCreateEntriesBadAnswers(t *testing.T) {
	in := []registry.Entry{admintest.Entry("/a", "unix:uid:1")}
	t.Run("wrong count", func(t *testing.T) {
		_, err := canned(t, http.StatusOK, `{"results":[]}`).CreateEntries(t.Context(), in)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "0 results for 1 entries")
	})
	t.Run("not JSON", func(t *testing.T) {
		_, err := canned(t, http.StatusOK, `{`).CreateEntries(t.Context(), in)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "malformed answer")
	})
	t.Run("neither entry nor error", func(t *testing.T) {
		results, err := canned(t, http.StatusOK, `{"results":[{}]}`).CreateEntries(t.Context(), in)
		require.NoError(t, err)
		require.Error(t, results[0].Err)
		assert.Contains(t, results[0].Err.Error(), "neither an entry nor an error")
	})
	t.Run("malformed entry", func(t *testing.T) {
		results, err := canned(t, http.StatusOK, `{"results":[{"entry":{"spiffe_id":"x"}}]}`).CreateEntries(t.Context(), in)
		require.NoError(t, err)
		require.Error(t, results[0].Err)
		assert.Contains(t, results[0].Err.Error(), "malformed entry")
	})
}

// TestCreateEntriesUnreachable checks that a server that is gone fails
// the call, with the results of the requests answered before (none).
func TestCreateEntriesUnreachable(t *testing.T) {
	c := admin.Dial(filepath.Join(t.TempDir(), "none.sock"))
	defer c.Close()
	results, err := c.CreateEntries(t.Context(), []registry.Entry{admintest.Entry("/a", "unix:uid:1")})
	require.Error(t, err)
	assert.Empty(t, results)
	assert.Contains(t, err.Error(), "cannot reach the server")
}
