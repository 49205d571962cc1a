package unix

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"sync"
	"time"
)

// maxCachedNames bounds each of the user and group caches; when one is full
// it is emptied, so a caller cycling through IDs cannot grow it.
const maxCachedNames = 4096

// nameCache resolves user and group IDs to names with os/user (which reads
// /etc/passwd and /etc/group itself when cgo is off) and remembers answers,
// unknown IDs included, for ttl.
type nameCache struct {
	ttl time.Duration // <= 0: no caching
	now func() time.Time

	mu     sync.Mutex // guards users and groups
	users  map[uint32]cachedName
	groups map[uint32]cachedName
}

type cachedName struct {
	name    string // "" if the ID has no name
	expires time.Time
}

func newNameCache(ttl time.Duration, now func() time.Time) *nameCache {
	return &nameCache{
		ttl:    ttl,
		now:    now,
		users:  make(map[uint32]cachedName),
		groups: make(map[uint32]cachedName),
	}
}

// user returns the name of uid, or "" if it has none.
func (c *nameCache) user(uid uint32) (string, error) {
	return c.lookup(c.users, uid, func(id string) (string, error) {
		u, err := user.LookupId(id)
		if _, ok := errors.AsType[user.UnknownUserIdError](err); ok {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("unix: looking up user %s: %w", id, err)
		}
		return u.Username, nil
	})
}

// group returns the name of gid, or "" if it has none.
func (c *nameCache) group(gid uint32) (string, error) {
	return c.lookup(c.groups, gid, func(id string) (string, error) {
		g, err := user.LookupGroupId(id)
		if _, ok := errors.AsType[user.UnknownGroupIdError](err); ok {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("unix: looking up group %s: %w", id, err)
		}
		return g.Name, nil
	})
}

func (c *nameCache) lookup(m map[uint32]cachedName, id uint32, resolve func(string) (string, error)) (string, error) {
	now := c.now()
	if c.ttl > 0 {
		c.mu.Lock()
		e, ok := m[id]
		c.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.name, nil
		}
	}
	// Resolve without the lock: it reads files, and two callers resolving
	// the same ID at once only do the work twice.
	name, err := resolve(strconv.FormatUint(uint64(id), 10))
	if err != nil || c.ttl <= 0 {
		return name, err
	}
	c.mu.Lock()
	if len(m) >= maxCachedNames {
		clear(m)
	}
	m[id] = cachedName{name: name, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return name, nil
}
