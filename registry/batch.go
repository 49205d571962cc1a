package registry

import (
	"context"
	"fmt"
	"time"
)

// MaxBatch is the largest number of entries one [BatchCreator.CreateBatch]
// call accepts. It bounds the size of one transaction and of the results a
// caller holds at once.
const MaxBatch = 1000

// A BatchCreator is a store that can create many entries in one write.
// Callers find it by type assertion on a [Store] and fall back to
// [Writer.Create], one entry at a time, when a store lacks it.
type BatchCreator interface {
	// CreateBatch creates entries and returns one result per entry, in the
	// same order. Each entry is validated and stored exactly as
	// [Writer.Create] would: one that is invalid, or similar to a stored
	// entry or to an earlier entry of the same batch, fails on its own,
	// with a result error wrapping [ErrInvalid] or [ErrAlreadyExists],
	// while the others are stored. All stored entries and their change-feed
	// events, in batch order, commit in one transaction.
	//
	// The returned error is for the batch as a whole (the store is
	// unreachable, ctx is done); then no entry was stored. A batch of more
	// than [MaxBatch] entries is refused with an error wrapping
	// [ErrInvalid]. An empty batch stores nothing and succeeds.
	CreateBatch(ctx context.Context, entries []Entry) ([]BatchResult, error)
}

// BatchResult is the outcome of one entry of a [BatchCreator.CreateBatch]
// call: the entry as stored when Err is nil, or the reason it was not
// stored.
type BatchResult struct {
	// Entry is the entry as [Writer.Create] returns it; zero when Err is
	// set.
	Entry Entry
	// Err wraps [ErrInvalid] or [ErrAlreadyExists] when the entry was not
	// stored.
	Err error
}

// PrepareBatch helps implement [BatchCreator]: it checks the batch size and
// prepares each entry with [PrepareCreate]. An entry similar to an earlier
// one of the batch, or with the ID of an earlier one, fails with
// [ErrAlreadyExists]. It returns the results,
// with the entries to store in the results whose Err is nil, and the
// similarity key of each of those (empty for failed ones); the store still
// checks the prepared entries against the entries it holds. The error, if
// any, wraps [ErrInvalid] and concerns the whole batch.
func PrepareBatch(entries []Entry, now time.Time) ([]BatchResult, []string, error) {
	if len(entries) > MaxBatch {
		return nil, nil, invalidf("batch of %d entries; at most %d are allowed", len(entries), MaxBatch)
	}
	results := make([]BatchResult, len(entries))
	keys := make([]string, len(entries))
	seen := make(map[string]struct{}, len(entries))
	ids := make(map[string]struct{})
	for i, e := range entries {
		p, err := PrepareCreate(e, now)
		if err != nil {
			results[i].Err = err
			continue
		}
		if e.ID != "" {
			if _, dup := ids[e.ID]; dup {
				results[i].Err = fmt.Errorf("%w: entry ID %s is taken by an earlier entry of the batch", ErrAlreadyExists, e.ID)
				continue
			}
			ids[e.ID] = struct{}{}
		}
		key := SimilarityKey(p)
		if _, dup := seen[key]; dup {
			results[i].Err = fmt.Errorf("%w: %s is similar to an earlier entry of the batch", ErrAlreadyExists, p.SPIFFEID)
			continue
		}
		seen[key] = struct{}{}
		results[i].Entry = p
		keys[i] = key
	}
	return results, keys, nil
}
