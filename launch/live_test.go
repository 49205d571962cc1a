package launch_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spiffekit/spiffekit/attest"
	"github.com/spiffekit/spiffekit/launch"
	"github.com/spiffekit/spiffekit/registry"
	"github.com/spiffekit/spiffekit/spiffeid"
)

// TestMaxLive: at Config.MaxLive live launches, Launch refuses another;
// an end or an expiry makes room, a redemption does not.
func TestMaxLive(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.MaxLive = 2 })
	a := e.launch(t, "/a")
	e.launch(t, "/b")
	_, err := e.ls.Redeem(t.Context(), a.Handle, nil)
	require.NoError(t, err)
	_, err = e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/c")})
	require.ErrorIs(t, err, launch.ErrTooManyLive, "a redeemed launch is alive until it ends")
	assert.EqualError(t, err, "launch: too many live launches: 2 alive, the most allowed; end one, or wait for one to expire")

	require.NoError(t, e.ls.End(t.Context(), a.ID))
	c := e.launch(t, "/c")
	_, err = e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/d")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)

	// Expired launches count no more, pruned or not.
	e.clock.Add(launch.DefaultTTL)
	e.launch(t, "/d")
	e.launch(t, "/e")
	_, err = e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/f")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)
	_, err = e.ls.Get(t.Context(), c.ID)
	require.NoError(t, err, "the expired entry is still stored")
}

// TestMaxLiveCountsTheStore: a server counts the live launches the store
// held at its first launch (an earlier run's, another server's), not the
// expired ones nor other entries.
func TestMaxLiveCountsTheStore(t *testing.T) {
	e := newEnv(t)
	e.launch(t, "/a")
	e.launch(t, "/b")
	_, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/old"), TTL: launch.MinTTL})
	require.NoError(t, err)
	_, err = e.store.Create(t.Context(), registry.Entry{SPIFFEID: spiffeid.RequireFromPath(td, "/w"), ParentID: spiffeid.RequireFromPath(td, "/agent"),
		Selectors: []attest.Selector{{Type: "unix", Value: "uid:1"}}})
	require.NoError(t, err)
	e.clock.Add(launch.MinTTL)

	next, err := launch.New(launch.Config{TrustDomain: td, Entries: e.store, Now: e.clock.Now, MaxLive: 3})
	require.NoError(t, err)
	_, err = next.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/c")})
	require.NoError(t, err, "two live launches: /old expired, /w is no launch")
	_, err = next.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/d")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)

	// The store's failure at the first launch fails it, and the next
	// launch reads again.
	fs := &failingStore{Store: e.store}
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: fs, Now: e.clock.Now, MaxLive: 4})
	require.NoError(t, err)
	fs.fail(errDown)
	_, err = ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/e")})
	require.ErrorIs(t, err, errDown)
	assert.ErrorContains(t, err, "counting the live launches")
	fs.fail(nil)
	_, err = ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/e")})
	require.NoError(t, err)
	_, err = ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/f")})
	require.ErrorIs(t, err, launch.ErrTooManyLive, "/a, /b, /c, /e")
}

// entriesOnly is a launch store that cannot list.
type entriesOnly struct{ launch.Entries }

// TestMaxLiveConcurrent: concurrent launches never pass the maximum, and a
// failed launch frees its place; a store that cannot list is not read.
func TestMaxLiveConcurrent(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.store}
	ls, err := launch.New(launch.Config{TrustDomain: td, Entries: entriesOnly{fs}, Now: e.clock.Now, MaxLive: 5, Burst: 100})
	require.NoError(t, err)
	fs.fail(errDown)
	_, err = ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/x")})
	require.ErrorIs(t, err, errDown)
	fs.fail(nil)

	var made atomic.Int32
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			_, err := ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/sandbox/"+string(rune('a'+i)))})
			if err == nil {
				made.Add(1)
			} else {
				assert.ErrorIs(t, err, launch.ErrTooManyLive)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(5), made.Load(), "the failed launch holds no place")
}

// TestMaxLiveFromConfig: Config.Live is the count, when given.
func TestMaxLiveFromConfig(t *testing.T) {
	var live atomic.Int64
	live.Store(10)
	e := newEnv(t, func(c *launch.Config) { c.MaxLive = 10; c.Live = func() int { return int(live.Load()) } })
	_, err := e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)
	assert.ErrorContains(t, err, "10 alive")
	live.Store(9)
	l := e.launch(t, "/a")
	require.NoError(t, e.ls.End(t.Context(), l.ID))

	// The default maximum.
	live.Store(launch.DefaultMaxLive)
	e = newEnv(t, func(c *launch.Config) { c.Live = func() int { return int(live.Load()) } })
	_, err = e.ls.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)
}

// TestMaxLiveAPI: the launcher API answers 503 too_many_launches, which
// the client returns as ErrTooManyLive.
func TestMaxLiveAPI(t *testing.T) {
	e := newEnv(t, func(c *launch.Config) { c.MaxLive = 1 })
	c := e.dial(t)
	_, err := c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/a")})
	require.NoError(t, err)
	_, err = c.Launch(t.Context(), launch.Params{SPIFFEID: spiffeid.RequireFromPath(td, "/b")})
	require.ErrorIs(t, err, launch.ErrTooManyLive)
	assert.EqualError(t, err, "launch: too many live launches: 1 alive, the most allowed; end one, or wait for one to expire")

	hc, _ := e.api(t)
	resp, err := hc.Post("http://launcher/v1/launches", "application/json", strings.NewReader(`{"spiffe_id": "spiffe://example.org/c"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Contains(t, e.logs.String(), "too many live launches")
}
