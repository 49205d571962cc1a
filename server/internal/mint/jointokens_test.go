package mint

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// refusingEntries is an entry store whose writes fail.
type refusingEntries struct{ registry.Store }

func (refusingEntries) Create(context.Context, registry.Entry) (registry.Entry, error) {
	return registry.Entry{}, errors.New("disk full")
}

// recordingTokens remembers the ID of the last token created.
type recordingTokens struct {
	registry.TokenStore
	last string
}

func (r *recordingTokens) CreateToken(ctx context.Context, tok registry.JoinToken) error {
	r.last = tok.ID
	return r.TokenStore.CreateToken(ctx, tok)
}

func TestTokenIssuerAlias(t *testing.T) {
	tdi := spiffeid.RequireTrustDomainFromString("example.org")
	mem := memstore.New(memstore.Config{})
	store := &recordingTokens{TokenStore: mem}
	ti := JoinTokens{Store: store, Entries: refusingEntries{mem}, ServerID: spiffeid.RequireFromPath(tdi, "/spiffekit/server")}

	// The alias cannot be stored: no token is left behind.
	_, _, err := ti.GenerateToken(t.Context(), time.Minute, spiffeid.RequireFromPath(tdi, "/nodes/a"))
	require.ErrorContains(t, err, "disk full")
	assert.ErrorContains(t, err, `server: node alias "spiffe://example.org/nodes/a" of token `)
	require.NotEmpty(t, store.last)
	_, err = mem.GetToken(t.Context(), store.last)
	require.ErrorIs(t, err, registry.ErrNotFound, "the token of an alias that could not be stored is deleted")

	for name, alias := range map[string]spiffeid.ID{
		"reserved":           spiffeid.RequireFromPath(tdi, "/spiffekit/agent/a"),
		"no path":            tdi.ID(),
		"other trust domain": spiffeid.RequireFromString("spiffe://other.org/a"),
	} {
		_, _, err := ti.GenerateToken(t.Context(), time.Minute, alias)
		require.ErrorIs(t, err, registry.ErrInvalid, name)
		assert.ErrorContains(t, err, "must be a workload ID of trust domain \"example.org\" outside /spiffekit/", name)
	}
	for _, ttl := range []time.Duration{0, time.Second - 1, 24*time.Hour + 1} {
		_, _, err := ti.GenerateToken(t.Context(), ttl, spiffeid.ID{})
		require.ErrorIs(t, err, registry.ErrInvalid, ttl)
		assert.ErrorContains(t, err, "token TTL must be between 1s and 24h0m0s")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err = ti.GenerateToken(ctx, time.Minute, spiffeid.ID{})
	require.ErrorIs(t, err, context.Canceled, "a store failure is passed on")
	assert.NotErrorIs(t, err, registry.ErrInvalid)
}
