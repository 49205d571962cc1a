package issuer

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/attest/unix"
	"github.com/spiffekit/spiffekit/ca/rotation"
	"github.com/spiffekit/spiffekit/internal/testing/leaktest"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/registry/memstore"
	"github.com/spiffekit/spiffekit/spiffeid"
	"github.com/spiffekit/spiffekit/workloadapi/endpoint"
)

// The issuer keeps one copy of each CA certificate its SVIDs hold, and
// forgets it with the last SVID it signed.
func TestCACopiesFollowTheSVIDs(t *testing.T) {
	t.Cleanup(leaktest.Check(t)) // registered first, so it runs after every other cleanup
	td := spiffeid.RequireTrustDomainFromString("example.org")
	m, err := rotation.New(t.Context(), rotation.Config{TrustDomain: td})
	require.NoError(t, err)
	store := memstore.New(memstore.Config{})
	attestor, err := unix.New(unix.Config{SkipHash: true})
	require.NoError(t, err)
	i, err := New(t.Context(), Config{Trust: TrustFromAuthority(m), Signer: NewLocalSigner(m), Registry: store, Attestor: attestor, PreMint: true})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- i.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
		require.NoError(t, i.Close())
	})
	uid := attest.Selector{Type: "unix", Value: "uid:" + strconv.Itoa(os.Getuid())}
	for _, path := range []string{"/a", "/b", "/c"} {
		_, err := store.Create(t.Context(), registry.Entry{
			SPIFFEID: spiffeid.RequireFromPath(td, path), ParentID: spiffeid.RequireFromPath(td, "/issuer"),
			Selectors: []attest.Selector{uid},
		})
		require.NoError(t, err)
	}
	require.NoError(t, i.Sync(t.Context()))
	sub, err := i.Subscribe(t.Context(), endpoint.Caller{PID: os.Getpid(), UID: os.Geteuid(), GID: os.Getegid()})
	require.NoError(t, err)
	defer sub.Close()

	copies := func() map[string]int {
		i.mu.Lock()
		defer i.mu.Unlock()
		return i.svids.CARefs()
	}
	first := string(m.X509Authority().Certificate().Raw)
	assert.Equal(t, map[string]int{first: 3}, copies())

	_, err = m.PrepareX509CA(t.Context())
	require.NoError(t, err)
	require.NoError(t, m.ActivateX509CA(t.Context()))
	second := string(m.X509Authority().Certificate().Raw)
	require.NotEqual(t, first, second)
	require.Eventually(t, func() bool {
		c := copies()
		return len(c) == 1 && c[second] == 3
	}, 10*time.Second, 10*time.Millisecond, "the old CA's copy is dropped with the last SVID it signed")

	// An entry deleted takes its SVID's reference with it (with PreMint,
	// its SVID goes at once).
	all, _, err := store.List(t.Context(), registry.Filter{}, registry.Page{})
	require.NoError(t, err)
	_, err = store.Delete(t.Context(), all[0].ID, 0)
	require.NoError(t, err)
	require.NoError(t, i.Sync(t.Context()))
	require.Eventually(t, func() bool { return copies()[second] == 2 }, 10*time.Second, 10*time.Millisecond)
}
