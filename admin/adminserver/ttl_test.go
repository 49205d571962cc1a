package adminserver_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
)

// TestTinySVIDTTLRefused: an entry whose X509- or JWT-SVID TTL is below
// registry.MinSVIDTTL cannot be created or updated through the admin API
// (no CA can honour it, and its workloads would get nothing); zero (the
// default) and the minimum itself are accepted.
func TestTinySVIDTTLRefused(t *testing.T) {
	e := admintest.Start(t)
	c := e.Client

	for _, tc := range []struct {
		name string
		set  func(*registry.Entry)
		want string
	}{
		{"x509 1ns", func(en *registry.Entry) { en.X509SVIDTTL = time.Nanosecond }, "X509-SVID TTL"},
		{"x509 999ms", func(en *registry.Entry) { en.X509SVIDTTL = 999 * time.Millisecond }, "X509-SVID TTL"},
		{"jwt 1ns", func(en *registry.Entry) { en.JWTSVIDTTL = time.Nanosecond }, "JWT-SVID TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := admintest.Entry("/tiny", "unix:uid:7")
			tc.set(&in)
			_, err := c.CreateEntry(t.Context(), in)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, "at least 1s")
		})
	}

	// On the wire too: 400 with the reason, never a 500.
	status, text := admintest.Raw(t, e.Path, "POST", "/v1/entries", strings.NewReader(
		`{"spiffe_id":"spiffe://example.org/tiny","parent_id":"spiffe://example.org/agent/node1",`+
			`"selectors":[{"type":"unix","value":"uid:7"}],"x509_svid_ttl":"1ns"}`))
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, text, "at least 1s")

	in := admintest.Entry("/ok", "unix:uid:7")
	in.X509SVIDTTL, in.JWTSVIDTTL = registry.MinSVIDTTL, registry.MinSVIDTTL
	created, err := c.CreateEntry(t.Context(), in)
	require.NoError(t, err)
	created.X509SVIDTTL = time.Nanosecond
	_, err = c.UpdateEntry(t.Context(), created)
	require.ErrorIs(t, err, registry.ErrInvalid)
}

// TestTinySVIDTTLEntryStaysReadable: an entry stored with a tiny TTL before
// the minimum existed can still be read, listed, fixed and deleted.
func TestTinySVIDTTLEntryStaysReadable(t *testing.T) {
	e := admintest.Start(t)
	c := e.Client
	old := admintest.Entry("/old", "unix:uid:7")
	old.ID, old.Revision, old.X509SVIDTTL = registry.NewEntryID(), 1, time.Nanosecond
	require.NoError(t, e.Store.Replicate(t.Context(), []registry.Entry{old}, nil))

	got, err := c.Entry(t.Context(), old.ID)
	require.NoError(t, err)
	assert.Equal(t, time.Nanosecond, got.X509SVIDTTL)
	list, err := c.ListEntries(t.Context(), registry.Filter{})
	require.NoError(t, err)
	require.Len(t, list, 1)

	got.X509SVIDTTL = time.Minute
	fixed, err := c.UpdateEntry(t.Context(), got)
	require.NoError(t, err)
	assert.Equal(t, time.Minute, fixed.X509SVIDTTL)
	_, err = c.DeleteEntry(t.Context(), fixed.ID, fixed.Revision)
	require.NoError(t, err)
}
