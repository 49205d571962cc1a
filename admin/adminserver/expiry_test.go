package adminserver_test

import (
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

// TestEntryExpiry: an entry's expiry is written, read, listed, changed and
// cleared through the API, to the second; an expiry that has come (by the
// server's clock) is refused on create, on update and in a batch, with the
// time in the message, and stores nothing.
func TestEntryExpiry(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	e := admintest.Start(t, func(c *adminserver.Config) { c.Now = func() time.Time { return now } })
	c := e.Client
	ctx := t.Context()

	in := admintest.Entry("/expiring", "unix:uid:7")
	in.ExpiresAt = now.Add(time.Hour + 500*time.Millisecond)
	created, err := c.CreateEntry(ctx, in)
	require.NoError(t, err)
	assert.Equal(t, now.Add(time.Hour), created.ExpiresAt, "to the second")
	got, err := c.Entry(ctx, created.ID)
	require.NoError(t, err)
	assert.Equal(t, created, got)
	list, err := c.ListEntries(ctx, registry.Filter{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, now.Add(time.Hour), list[0].ExpiresAt)

	plain, err := c.CreateEntry(ctx, admintest.Entry("/plain", "unix:uid:8"))
	require.NoError(t, err)
	assert.True(t, plain.ExpiresAt.IsZero())

	// The past and the present are refused, with the time.
	for _, at := range []time.Time{now, now.Add(-time.Second), registry.MinExpiry} {
		bad := admintest.Entry("/late", "unix:uid:9")
		bad.ExpiresAt = at
		_, err := c.CreateEntry(ctx, bad)
		require.ErrorIs(t, err, registry.ErrInvalid)
		assert.ErrorContains(t, err, "entry expiry "+at.Format(time.RFC3339))
		assert.ErrorContains(t, err, "has passed")
	}
	// On the wire: refused, never a 500.
	status, text := admintest.Raw(t, e.Path, "POST", "/v1/entries", strings.NewReader(
		`{"spiffe_id":"spiffe://example.org/far","parent_id":"spiffe://example.org/agent/node1",`+
			`"selectors":[{"type":"unix","value":"uid:7"}],"expires_at":"0001-01-01T00:00:01Z"}`))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, text, "has passed")
	status, text = admintest.Raw(t, e.Path, "POST", "/v1/entries", strings.NewReader(
		`{"spiffe_id":"spiffe://example.org/far","parent_id":"spiffe://example.org/agent/node1",`+
			`"selectors":[{"type":"unix","value":"uid:7"}],"expires_at":"tomorrow"}`))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, text, "malformed")

	// In a batch, the expired entry fails alone.
	late := admintest.Entry("/late", "unix:uid:9")
	late.ExpiresAt = now.Add(-time.Hour)
	results, err := c.CreateEntries(ctx, []registry.Entry{late, admintest.Entry("/fine", "unix:uid:10")})
	require.NoError(t, err)
	require.Len(t, results, 2)
	require.ErrorIs(t, results[0].Err, registry.ErrInvalid)
	assert.ErrorContains(t, results[0].Err, "has passed")
	require.NoError(t, results[1].Err)

	// Update: moved to the past, refused; moved later, and cleared.
	moved := created
	moved.ExpiresAt = now.Add(-time.Minute)
	_, err = c.UpdateEntry(ctx, moved)
	require.ErrorIs(t, err, registry.ErrInvalid)
	moved.ExpiresAt = now.Add(48 * time.Hour)
	moved, err = c.UpdateEntry(ctx, moved)
	require.NoError(t, err)
	assert.Equal(t, now.Add(48*time.Hour), moved.ExpiresAt)
	moved.ExpiresAt = time.Time{}
	moved, err = c.UpdateEntry(ctx, moved)
	require.NoError(t, err)
	assert.True(t, moved.ExpiresAt.IsZero(), "an update without an expiry clears it")
	stored, err := e.Store.Get(ctx, created.ID)
	require.NoError(t, err)
	assert.True(t, stored.ExpiresAt.IsZero())
}
