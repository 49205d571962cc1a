package registry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestReservedIDsAreNotWritten: every store's write path refuses an entry
// whose SPIFFE ID is in the server's and agents' namespace, while such an
// entry, stored before, still validates when it is read.
func TestReservedIDsAreNotWritten(t *testing.T) {
	rtd := spiffeid.RequireTrustDomainFromString("example.org")
	now := time.Now()
	mk := func(path string) registry.Entry {
		return registry.Entry{
			SPIFFEID:  spiffeid.RequireFromPath(rtd, path),
			ParentID:  spiffeid.RequireFromPath(rtd, "/spiffekit/server"),
			Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}},
		}
	}
	for _, path := range []string{"/spiffekit", "/spiffekit/server", "/spiffekit/agent/join_token/x"} {
		e := mk(path)
		require.NoError(t, e.Validate(), "an entry stored before stays readable")
		_, err := registry.PrepareCreate(e, now)
		require.ErrorIs(t, err, registry.ErrInvalid, path)
		assert.EqualError(t, err, `registry: entry SPIFFE ID "`+e.SPIFFEID.String()+`" is reserved for the server and its agents (spiffe://example.org/spiffekit/...)`)
		stored := mk("/web")
		stored.Revision = 1
		e.Revision = 1
		_, err = registry.PrepareUpdate(stored, e, now)
		require.ErrorIs(t, err, registry.ErrInvalid, path)
	}
	for _, path := range []string{"/spiffekit-web", "/web/spiffekit", "/spiffekitx/agent"} {
		_, err := registry.PrepareCreate(mk(path), now)
		require.NoError(t, err, path)
	}
	e := mk("/web")
	_, err := registry.PrepareCreate(e, now)
	require.NoError(t, err, "a reserved parent is fine: node aliases hang off the server's ID")
}

// TestTinySVIDTTLsAreNotWritten: the write path refuses a non-zero SVID TTL
// below MinSVIDTTL, while such an entry, stored before, still validates
// when it is read; zero and MinSVIDTTL itself are written.
func TestTinySVIDTTLsAreNotWritten(t *testing.T) {
	rtd := spiffeid.RequireTrustDomainFromString("example.org")
	now := time.Now()
	mk := func(x509, jwt time.Duration) registry.Entry {
		return registry.Entry{
			SPIFFEID:    spiffeid.RequireFromPath(rtd, "/web"),
			ParentID:    spiffeid.RequireFromPath(rtd, "/spiffekit/server"),
			Selectors:   []attest.Selector{{Type: "unix", Value: "uid:1"}},
			X509SVIDTTL: x509, JWTSVIDTTL: jwt,
		}
	}
	for _, e := range []registry.Entry{mk(time.Nanosecond, 0), mk(0, time.Second-1)} {
		require.NoError(t, e.Validate(), "an entry stored before stays readable")
		_, err := registry.PrepareCreate(e, now)
		require.ErrorIs(t, err, registry.ErrInvalid)
		assert.ErrorContains(t, err, "is too short: it must be zero (the default) or at least 1s")
		stored := mk(0, 0)
		stored.Revision, e.Revision = 1, 1
		_, err = registry.PrepareUpdate(stored, e, now)
		require.ErrorIs(t, err, registry.ErrInvalid)
	}
	for _, e := range []registry.Entry{mk(0, 0), mk(registry.MinSVIDTTL, registry.MinSVIDTTL)} {
		_, err := registry.PrepareCreate(e, now)
		require.NoError(t, err)
	}
}
