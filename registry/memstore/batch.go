package memstore

import (
	"context"
	"fmt"

	"github.com/spiffekit/spiffekit/registry"
)

var _ registry.BatchCreator = (*Store)(nil)

// CreateBatch implements [registry.BatchCreator]: the stored entries and
// their events appear at once to readers, under one hold of the lock.
func (s *Store) CreateBatch(ctx context.Context, entries []registry.Entry) ([]registry.BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	results, keys, err := registry.PrepareBatch(entries, s.now())
	if err != nil {
		return nil, err
	}
	created := 0
	s.mu.Lock()
	for i := range results {
		r := &results[i]
		if r.Err != nil {
			continue
		}
		if _, dup := s.similar[similarityOfKey(keys[i])]; dup {
			r.Err = fmt.Errorf("%w: %s", registry.ErrAlreadyExists, r.Entry.SPIFFEID)
			r.Entry = registry.Entry{}
			continue
		}
		if _, taken := s.entries[r.Entry.ID]; taken {
			r.Err, r.Entry = idTaken(r.Entry.ID), registry.Entry{}
			continue
		}
		stored := &registry.Entry{}
		*stored = r.Entry
		s.entries[stored.ID] = stored
		s.similar[similarityOfKey(keys[i])] = stored.ID
		s.pending = append(s.pending, stored.ID)
		s.appendEvent(registry.OpCreate, stored.ID, nil, stored)
		r.Entry = stored.Clone()
		created++
	}
	s.mu.Unlock()
	if created > 0 {
		s.signal(registry.TopicEntries)
	}
	return results, nil
}
