package nodeserver

import (
	"sync"

	"github.com/spiffekit/spiffekit/spiffeid"
)

// recordLocks serializes, agent by agent, the changes of an agent record
// that are made from a read of it: a renewal, and the retirement of the
// previous SVID once the agent uses its new one. Two calls of one agent at
// once (after a partition heals, an agent renews while its other calls use
// the SVID it renewed last) each read the record and wrote it back
// changed, and the one that wrote last erased the other's change: the new
// serial of a renewal, so that the agent was refused the SVID it had just
// been given. Servers sharing a store do not share these locks; an agent
// speaks to one server at a time.
type recordLocks struct {
	mu    sync.Mutex
	locks map[spiffeid.ID]*recordLock
}

type recordLock struct {
	sync.Mutex
	users int // holding or waiting; guarded by recordLocks.mu
}

// lock locks the record of id, and returns the function that unlocks it.
func (l *recordLocks) lock(id spiffeid.ID) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[spiffeid.ID]*recordLock)
	}
	k := l.locks[id]
	if k == nil {
		k = &recordLock{}
		l.locks[id] = k
	}
	k.users++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.users--; k.users == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}
