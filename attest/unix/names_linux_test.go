package unix

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNameCache(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newNameCache(time.Minute, func() time.Time { return now })

	calls := 0
	resolve := func(id string) (string, error) {
		calls++
		return "name-" + id, nil
	}
	m := c.users
	name, err := c.lookup(m, 7, resolve)
	require.NoError(t, err)
	assert.Equal(t, "name-7", name)

	// Within the TTL the cached name is used.
	now = now.Add(59 * time.Second)
	name, err = c.lookup(m, 7, resolve)
	require.NoError(t, err)
	assert.Equal(t, "name-7", name)
	assert.Equal(t, 1, calls)

	// After it, the name is resolved again.
	now = now.Add(2 * time.Second)
	_, err = c.lookup(m, 7, resolve)
	require.NoError(t, err)
	assert.Equal(t, 2, calls)

	// The cache is bounded: filling it empties it.
	for id := range uint32(maxCachedNames + 10) {
		_, err := c.lookup(m, id+100, resolve)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, len(m), maxCachedNames)
}

func TestNameCacheDisabled(t *testing.T) {
	c := newNameCache(-1, time.Now)
	calls := 0
	resolve := func(string) (string, error) { calls++; return "", nil }
	for range 3 {
		_, err := c.lookup(c.groups, 1, resolve)
		require.NoError(t, err)
	}
	assert.Equal(t, 3, calls)
	assert.Empty(t, c.groups)
}

func TestNameCacheRealLookups(t *testing.T) {
	c := newNameCache(time.Minute, time.Now)
	// uid and gid 0 are named on every Linux system; 3999001 on none.
	name, err := c.user(0)
	require.NoError(t, err)
	assert.Equal(t, "root", name)
	name, err = c.group(0)
	require.NoError(t, err)
	assert.Equal(t, "root", name)
	name, err = c.user(3999001)
	require.NoError(t, err)
	assert.Empty(t, name, "an unknown ID has no name, and is no error")
	name, err = c.group(3999001)
	require.NoError(t, err)
	assert.Empty(t, name)
}

func TestAttestConcurrently(t *testing.T) {
	a := newAttestor(t, Config{SkipHash: true})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			got, err := a.Attest(t.Context(), self())
			assert.NoError(t, err)
			assert.Positive(t, got.Len())
		})
	}
	wg.Wait()
}
