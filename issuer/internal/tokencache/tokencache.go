package tokencache

import (
	"slices"
	"sync"
	"time"
)

// A Token is a cached token that knows when it expires, and the ID of
// the key that signed it.
type Token interface {
	// Expires returns when the token expires.
	Expires() time.Time
	// KeyID returns the ID of the key that signed the token.
	KeyID() string
}

// Cache keeps minted tokens by key, at most limit of them: putting a
// new key into a full cache first drops the expired tokens, and everything
// if none has expired. The zero value is an empty cache. It is safe for
// concurrent use.
type Cache[T Token] struct {
	mu    sync.Mutex
	items map[string]T
}

// Get returns the cached token for key, if any.
func (c *Cache[T]) Get(key string) (T, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.items[key]
	return t, ok
}

// Each calls f with each cached token, in no order, holding the cache's
// lock: f must not use the cache.
func (c *Cache[T]) Each(f func(key string, t T)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, t := range c.items {
		f(k, t)
	}
}

// Put caches t under key, making room first as the type's doc says.
func (c *Cache[T]) Put(key string, t T, now time.Time, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.items == nil {
		c.items = make(map[string]T)
	}
	if _, ok := c.items[key]; !ok && len(c.items) >= limit {
		for k, old := range c.items {
			if !now.Before(old.Expires()) {
				delete(c.items, k)
			}
		}
		if len(c.items) >= limit {
			clear(c.items)
		}
	}
	c.items[key] = t
}

// DeleteFunc drops the cached tokens for which drop returns true, and
// returns how many it dropped. It holds the cache's lock: drop must not
// use the cache.
func (c *Cache[T]) DeleteFunc(drop func(key string, t T) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, t := range c.items {
		if drop(k, t) {
			delete(c.items, k)
			n++
		}
	}
	return n
}

// DropKeys drops the cached tokens of the keys keep refuses, and returns
// how many it dropped and those keys' IDs, sorted. It holds the cache's
// lock: keep must not use the cache.
func (c *Cache[T]) DropKeys(keep func(kid string) bool) (int, []string) {
	var gone []string
	n := c.DeleteFunc(func(_ string, t T) bool {
		kid := t.KeyID()
		if keep(kid) {
			return false
		}
		if !slices.Contains(gone, kid) {
			gone = append(gone, kid)
		}
		return true
	})
	slices.Sort(gone)
	return n, gone
}
