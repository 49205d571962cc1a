package memstore

import (
	"context"
	"fmt"

	"github.com/spiffekit/spiffekit/registry"
)

// Replicate makes the store a replica of another store: it applies entries
// as that store holds them (with their IDs, revisions and timestamps) and
// removes the deleted IDs, recording each change in the change feed like any
// write. A node agent keeps the entries its server streams to it this way.
//
// Deletions are applied first. An upsert whose revision is not newer than
// the stored entry's is ignored, so that replaying an update is harmless.
// Entries are validated; an invalid one fails the call before anything is
// applied. Similar entries are not refused: the source store decided.
func (s *Store) Replicate(ctx context.Context, upserts []registry.Entry, deleted []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, e := range upserts {
		if !registry.ValidEntryID(e.ID) {
			return fmt.Errorf("%w: memstore: replicated entry ID %q is invalid", registry.ErrInvalid, e.ID)
		}
		if e.Revision < 1 {
			return fmt.Errorf("%w: memstore: replicated entry %s has no revision", registry.ErrInvalid, e.ID)
		}
		if err := e.Validate(); err != nil {
			return err
		}
	}
	changed := false
	s.mu.Lock()
	for _, id := range deleted {
		old, ok := s.entries[id]
		if !ok {
			continue
		}
		delete(s.entries, id)
		if key := similarityOf(*old); s.similar[key] == id {
			delete(s.similar, key)
		}
		s.deleted++
		s.appendEvent(registry.OpDelete, id, old, nil)
		changed = true
	}
	for _, e := range upserts {
		old, ok := s.entries[e.ID]
		if ok && old.Revision >= e.Revision {
			continue
		}
		c := e.Clone()
		c.CreatedAt, c.UpdatedAt = registry.StoreTime(c.CreatedAt), registry.StoreTime(c.UpdatedAt)
		stored := &c
		s.entries[c.ID] = stored
		if ok {
			if key := similarityOf(*old); s.similar[key] == c.ID {
				delete(s.similar, key)
			}
			s.appendEvent(registry.OpUpdate, c.ID, old, stored)
		} else {
			s.pending = append(s.pending, c.ID)
			s.appendEvent(registry.OpCreate, c.ID, nil, stored)
		}
		s.similar[similarityOf(c)] = c.ID
		changed = true
	}
	s.mu.Unlock()
	if changed {
		s.signal(registry.TopicEntries)
	}
	return nil
}

// Revisions returns the ID and revision of every entry, as a replica tells
// its source what it holds.
func (s *Store) Revisions() map[string]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]int64, len(s.entries))
	for id, e := range s.entries {
		out[id] = e.Revision
	}
	return out
}
