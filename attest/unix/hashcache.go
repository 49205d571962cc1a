package unix

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"time"
)

// settleTime is how long ago a file must have last changed for its hash
// to be cached. A file system stamps a change with a coarse clock (a
// kernel tick, or coarser on some file systems), so two writes close
// together can leave the same modification and change times: a hash read
// between them must not be remembered under times the second write keeps.
// A file whose times are older than the moment its reading started by
// more than any such granularity is changed again only with new times.
const settleTime = time.Second

// fileKey is what identifies the contents of a file to the hash cache: its
// identity and the status fields every write or replacement changes.
// Writing the file changes its modification and change times (the change
// time cannot be set back by anyone), renaming another file over its
// path gives another inode, and an inode freed and reused gets a fresh
// change time.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime time.Time
}

// hashCache remembers the SHA-256 of executables by fileKey, the most
// recently used first, up to a bound, and hashes each file once however
// many attestations ask for it at the same time. It is safe for concurrent
// use.
type hashCache struct {
	max int // <= 0: nothing is remembered
	now func() time.Time

	mu       sync.Mutex // guards the fields below
	lru      *list.List // of *cachedHash, most recently used first
	byKey    map[fileKey]*list.Element
	inflight map[fileKey]*hashCall
}

type cachedHash struct {
	key fileKey
	sum string
}

// hashCall is a hash under way, which other attestations of the same file
// wait for.
type hashCall struct {
	done chan struct{}
	sum  string
	err  error
}

func newHashCache(max int, now func() time.Time) *hashCache {
	return &hashCache{max: max, now: now, lru: list.New(), byKey: make(map[fileKey]*list.Element), inflight: make(map[fileKey]*hashCall)}
}

// sum returns the hash of the file of key: remembered, or computed by
// hash. When another attestation is hashing the same file, it waits for
// that result; if that attestation gave up (its ctx ended), it hashes the
// file itself. A result is remembered only if the file had settled (see
// settleTime) when the hashing started.
func (c *hashCache) sum(ctx context.Context, key fileKey, hash func() (string, error)) (string, error) {
	if c.max <= 0 {
		return hash()
	}
	for {
		c.mu.Lock()
		if e, ok := c.byKey[key]; ok {
			c.lru.MoveToFront(e)
			c.mu.Unlock()
			return e.Value.(*cachedHash).sum, nil
		}
		call, waiting := c.inflight[key]
		if !waiting {
			call = &hashCall{done: make(chan struct{})}
			c.inflight[key] = call
		}
		c.mu.Unlock()

		if waiting {
			select {
			case <-call.done:
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if call.err == nil {
				return call.sum, nil
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if isContextError(call.err) {
				continue // its caller gave up, not this one
			}
			return "", call.err
		}

		started := c.now()
		call.sum, call.err = hash()
		c.mu.Lock()
		delete(c.inflight, key)
		if call.err == nil && settled(key, started) {
			c.addLocked(key, call.sum)
		}
		c.mu.Unlock()
		close(call.done)
		return call.sum, call.err
	}
}

// settled reports whether the file of key had last changed at least
// settleTime before started.
func settled(key fileKey, started time.Time) bool {
	limit := started.Add(-settleTime)
	return key.mtime.Before(limit) && key.ctime.Before(limit)
}

// addLocked remembers sum for key, forgetting the least recently used
// hash when the cache is full. c.mu must be held.
func (c *hashCache) addLocked(key fileKey, sum string) {
	if _, ok := c.byKey[key]; ok {
		return
	}
	if c.lru.Len() >= c.max {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.byKey, oldest.Value.(*cachedHash).key)
	}
	c.byKey[key] = c.lru.PushFront(&cachedHash{key: key, sum: sum})
}

// len returns the number of hashes remembered.
func (c *hashCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
