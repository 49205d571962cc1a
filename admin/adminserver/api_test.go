package adminserver_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/admin"
	"github.com/spiffekit/spiffekit/admin/adminserver"
	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/bundle/spiffebundle"
	"github.com/spiffekit/spiffekit/bundle/x509bundle"
	"github.com/spiffekit/spiffekit/internal/testing/admintest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Bundle rule: a trust domain's own bundle can never be overwritten through
// federation, whatever document is offered.
func TestFederatedBundleCannotReplaceOwn(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	for name, doc := range map[string][]byte{
		"foreign keys":  admintest.ForeignDoc(t, "example.org"),
		"its own again": mustMarshal(t, spiffebundle.FromX509Bundle(e.CA.X509Bundle())),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Client.SetFederatedBundle(ctx, td, doc)
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.Contains(t, err.Error(), "a trust domain's own bundle can never be overwritten through federation")
			_, err = e.Store.GetBundle(ctx, td)
			require.ErrorIs(t, err, registry.ErrNotFound, "nothing was stored")
		})
	}
}

func TestFederatedBundleRejectsBadDocuments(t *testing.T) {
	e := admintest.Start(t)
	other := spiffeid.RequireTrustDomainFromString("other.org")
	// Each is refused for its own fault, named after the trust domain (the
	// JSON decoder's own words are left out).
	const prefix = `admin: bundle of "other.org": spiffebundle: `
	for name, tt := range map[string]struct{ doc, want string }{
		"not JSON":          {"{", "unable to parse JWKS: "},
		"empty":             {"", "unable to parse JWKS: "},
		"keys not an array": {`{"keys":{}}`, "unable to parse JWKS: keys: "},
		"refresh hint zero": {`{"keys":[],"spiffe_refresh_hint":0}`, "spiffe_refresh_hint must be positive; got 0"},
		"private key":       {`{"keys":[{"kty":"EC","use":"jwt-svid","kid":"k","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`, `key 0 carries private key member "d"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.Client.SetFederatedBundle(t.Context(), other, []byte(tt.doc))
			require.ErrorIs(t, err, registry.ErrInvalid)
			assert.ErrorContains(t, err, prefix+tt.want)
		})
	}
	list, err := e.Client.ListFederatedBundles(t.Context())
	require.NoError(t, err)
	assert.Empty(t, list)
}

func mustMarshal(t *testing.T, b *spiffebundle.Bundle) []byte {
	t.Helper()
	doc, err := b.Marshal()
	require.NoError(t, err)
	return doc
}

func TestUnknownRoute(t *testing.T) {
	e := admintest.Start(t)
	status, _ := admintest.Raw(t, e.Path, "GET", "/v2/nothing", nil)
	assert.Equal(t, http.StatusNotFound, status)
	status, _ = admintest.Raw(t, e.Path, "PATCH", "/v1/entries", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

func TestOwnBundle(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()

	pem, err := e.Client.Bundle(ctx, admin.FormatPEM)
	require.NoError(t, err)
	xb, err := x509bundle.Parse(td, pem)
	require.NoError(t, err)
	assert.True(t, xb.Equal(e.CA.X509Bundle()))

	def, err := e.Client.Bundle(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, pem, def, "PEM is the default")

	doc, err := e.Client.Bundle(ctx, admin.FormatSPIFFE)
	require.NoError(t, err)
	sb, err := spiffebundle.Parse(td, doc)
	require.NoError(t, err)
	assert.Equal(t, e.CA.X509Bundle().X509Authorities(), sb.X509Authorities())

	_, err = e.Client.Bundle(ctx, "der")
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, `admin: unknown bundle format "der" (want pem or spiffe): registry: invalid argument`)

	empty := admintest.Start(t, func(c *adminserver.Config) { c.Bundle = func() *spiffebundle.Bundle { return nil } })
	_, err = empty.Client.Bundle(ctx, admin.FormatPEM)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no bundle yet")
}

func TestAgents(t *testing.T) {
	e := admintest.Start(t)
	ctx := t.Context()
	c := e.Client
	node1 := spiffeid.RequireFromPath(td, "/spire/agent/join_token/abc")
	node2 := spiffeid.RequireFromPath(td, "/spire/agent/x509pop/def")
	for _, id := range []spiffeid.ID{node2, node1} {
		_, err := e.Store.PutAgent(ctx, registry.Agent{
			ID:           id,
			AttestorType: "join_token",
			Selectors:    []attest.Selector{{Type: "join_token", Value: "abc"}},
			SerialNumber: "0a",
			ExpiresAt:    time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC),
			CanReattest:  true,
		})
		require.NoError(t, err)
	}

	agents, err := c.ListAgents(ctx)
	require.NoError(t, err)
	require.Len(t, agents, 2)
	assert.Equal(t, node1, agents[0].ID)
	assert.Equal(t, node2, agents[1].ID)
	stored, err := e.Store.GetAgent(ctx, node1)
	require.NoError(t, err)
	assertSameAgent(t, stored, agents[0])

	one, err := c.Agent(ctx, node2)
	require.NoError(t, err)
	assert.Equal(t, node2, one.ID)

	banned, err := c.BanAgent(ctx, node1)
	require.NoError(t, err)
	assert.True(t, banned.Banned)
	stored, err = e.Store.GetAgent(ctx, node1)
	require.NoError(t, err)
	assert.True(t, stored.Banned, "the ban is stored")
	assert.Equal(t, "0a", stored.SerialNumber, "the rest of the record is kept")

	require.NoError(t, c.EvictAgent(ctx, node2))
	_, err = e.Store.GetAgent(ctx, node2)
	require.ErrorIs(t, err, registry.ErrNotFound)

	require.ErrorIs(t, c.EvictAgent(ctx, node2), registry.ErrNotFound)
	_, err = c.BanAgent(ctx, node2)
	require.ErrorIs(t, err, registry.ErrNotFound)
	_, err = c.Agent(ctx, node2)
	require.ErrorIs(t, err, registry.ErrNotFound)

	err = c.EvictAgent(ctx, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: agent ID is required: registry: invalid argument")
	_, err = c.BanAgent(ctx, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: agent ID is required: registry: invalid argument")
	_, err = c.Agent(ctx, spiffeid.ID{})
	require.ErrorIs(t, err, registry.ErrInvalid)
	assert.EqualError(t, err, "admin: agent ID is required: registry: invalid argument")
}

func assertSameAgent(t *testing.T, want, got registry.Agent) {
	t.Helper()
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.AttestorType, got.AttestorType)
	assert.Equal(t, want.Selectors, got.Selectors)
	assert.Equal(t, want.SerialNumber, got.SerialNumber)
	assert.True(t, want.ExpiresAt.Equal(got.ExpiresAt))
	assert.True(t, want.CreatedAt.Equal(got.CreatedAt))
	assert.Equal(t, want.CanReattest, got.CanReattest)
	assert.Equal(t, want.Banned, got.Banned)
}
