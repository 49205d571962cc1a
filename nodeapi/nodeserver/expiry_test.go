package nodeserver_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/internal/testing/logtest"
	"github.com/spiffekit/spiffekit/nodeapi"
	"github.com/spiffekit/spiffekit/nodeapi/nodeserver"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// Property: an entry's expiry reaches the agent with the entry; at the
// expiry, with no write to the registry, the server tells the agent to
// drop it and refuses to sign for it, while an entry without expiry stays.
func TestEntryExpiryEndsItForAgents(t *testing.T) {
	var logs logtest.Buffer
	e := newEnv(t, func(c *nodeserver.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	n1 := e.attest(t, "node1")
	sels := []attest.Selector{{Type: "unix", Value: "uid:1000"}}
	// Five seconds ahead at least, to the second: the stream opens first.
	expiresAt := time.Now().Add(6 * time.Second).Truncate(time.Second)
	expiring, err := e.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/expiring"),
		ParentID: n1.svid.ID, Selectors: sels, ExpiresAt: expiresAt})
	require.NoError(t, err)
	lasting := e.entry(t, n1.svid.ID, "/lasting")

	updates, _ := syncUpdates(t, n1)
	u := next(t, updates)
	require.Len(t, u.Upserts, 2)
	got := map[string]registry.Entry{}
	for _, en := range u.Upserts {
		got[en.ID] = en
	}
	assert.Equal(t, expiresAt.UTC(), got[expiring.ID].ExpiresAt, "the expiry crosses the wire")
	assert.True(t, got[lasting.ID].ExpiresAt.IsZero())

	// The next update, with nothing written meanwhile, drops it.
	u = next(t, updates)
	assert.Equal(t, []string{expiring.ID}, u.Deleted)
	assert.Empty(t, u.Upserts)
	assert.False(t, time.Now().Before(expiresAt), "not before its expiry")

	key := newKey(t)
	csr, err := nodeapi.NewCSR(key, expiring.SPIFFEID)
	require.NoError(t, err)
	res, err := n1.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: expiring.ID, CSR: csr}})
	require.NoError(t, err)
	assert.ErrorContains(t, res[0].Err, "not authorized")
	csr, err = nodeapi.NewCSR(key, lasting.SPIFFEID)
	require.NoError(t, err)
	res, err = n1.client.SignX509SVIDs(t.Context(), []nodeapi.X509SVIDRequest{{EntryID: lasting.ID, CSR: csr}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	assert.Equal(t, []string{"/expiring"}, pathsOf(e.srv.Index().Expired()))
	assert.Contains(t, logs.String(), `msg="entry expired; no agent obtains it any more" entry_id=`+expiring.ID)
}

func pathsOf(es []registry.Entry) []string {
	var out []string
	for _, en := range es {
		out = append(out, en.SPIFFEID.Path())
	}
	return out
}
