package wpt

import (
	"container/heap"
	"errors"
	"sync"
	"time"
)

// ErrReplay is returned, wrapped, by [Verifier.Verify] and
// [Verifier.VerifyToken] when a WPT's jti was already accepted from the same
// SPIFFE ID while the WPT could still be valid.
var ErrReplay = errors.New("workload proof token replayed")

// ErrReplayCacheFull is returned, wrapped, by [Verifier.Verify] and
// [Verifier.VerifyToken] when the replay cache holds Config.ReplayCacheSize
// proofs that are all still valid. The proof is refused rather than an
// entry forgotten before its WPT expires, which would let that WPT be
// replayed; the cache empties as the proofs it holds expire, within
// Config.MaxLifetime plus Config.Leeway.
var ErrReplayCacheFull = errors.New("replay cache full")

// replayCache remembers the (sender, jti) pairs of accepted proofs until
// they expire, at most max of them. It is safe for concurrent use.
type replayCache struct {
	max int

	mu      sync.Mutex
	seen    map[string]struct{} // guarded by mu
	expires expiryHeap          // guarded by mu; the same keys as seen
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: make(map[string]struct{})}
}

// add records key until until, or fails when key is recorded or the cache
// is full of entries that have not reached their until at now.
func (c *replayCache) add(key string, until, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.expires) > 0 && !c.expires[0].until.After(now) {
		e := heap.Pop(&c.expires).(entry)
		delete(c.seen, e.key)
	}
	if _, ok := c.seen[key]; ok {
		return ErrReplay
	}
	if len(c.seen) >= c.max {
		return ErrReplayCacheFull
	}
	c.seen[key] = struct{}{}
	heap.Push(&c.expires, entry{key: key, until: until})
	return nil
}

// len returns the number of entries, expired ones included.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type entry struct {
	key   string
	until time.Time
}

// expiryHeap is a min-heap of entries by until.
type expiryHeap []entry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = entry{}
	*h = old[:len(old)-1]
	return e
}
