package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEntryExpiryCommands: -entryExpiry (SPIRE's flag, also -entry-expiry)
// sets an entry's expiry on create and update, in seconds since the
// epoch; entry show prints it; update with 0 clears it, and an update
// that sets the expiry it has writes nothing.
func TestEntryExpiryCommands(t *testing.T) {
	s := startServer(t)
	const at = "4102444800" // 2100-01-01T00:00:00Z
	r := s.run(t, "", "entry", "create", "-spiffeID", "spiffe://example.org/temp", "-parentID", "spiffe://example.org/agent",
		"-selector", "unix:uid:1", "-entryExpiry", at, "-output", "json")
	require.Equal(t, ExitOK, r.code, r.stderr)
	var created entryJSON
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &created))
	assert.Equal(t, int64(4102444800), created.ExpiresAt)
	stored, err := s.store.Get(t.Context(), created.EntryID)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), stored.ExpiresAt)

	r = s.run(t, "", "entry", "show", "-entryID", created.EntryID)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "\nEntry expiry:   2100-01-01T00:00:00Z (4102444800)\n")

	// The same expiry again: nothing to write.
	r = s.run(t, "", "entry", "update", "-entryID", created.EntryID, "-entry-expiry", at)
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Revision:       1\n")

	// Moved, then cleared.
	r = s.run(t, "", "entry", "update", "-entryID", created.EntryID, "-entryExpiry", "4102444900")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Entry expiry:   2100-01-01T00:01:40Z (4102444900)\n")
	r = s.run(t, "", "entry", "update", "-entryID", created.EntryID, "-entryExpiry", "0")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.NotContains(t, r.stdout, "Entry expiry")
	assert.Contains(t, r.stdout, "Revision:       3\n")
	stored, err = s.store.Get(t.Context(), created.EntryID)
	require.NoError(t, err)
	assert.True(t, stored.ExpiresAt.IsZero())

	// An update that leaves the expiry alone keeps it.
	r = s.run(t, "", "entry", "update", "-entryID", created.EntryID, "-entryExpiry", at)
	require.Equal(t, ExitOK, r.code, r.stderr)
	r = s.run(t, "", "entry", "update", "-entryID", created.EntryID, "-hint", "kept")
	require.Equal(t, ExitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Entry expiry:   2100-01-01T00:00:00Z (4102444800)\n")

	// What entry show -output json writes, entry create -data reads back,
	// expiry included.
	show := s.run(t, "", "entry", "show", "-entryID", created.EntryID, "-output", "json")
	require.Equal(t, ExitOK, show.code, show.stderr)
	r = s.run(t, "", "entry", "delete", "-entryID", created.EntryID)
	require.Equal(t, ExitOK, r.code, r.stderr)
	r = s.run(t, show.stdout, "entry", "create", "-data", "-")
	require.Equal(t, ExitOK, r.code, r.stderr)
	again, err := s.store.Get(t.Context(), created.EntryID)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), again.ExpiresAt)
	assert.Equal(t, "kept", again.Hint)
}
